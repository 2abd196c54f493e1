"""Messages the dispatcher consumes, as the other services publish them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import DeliverWebhook, PaymentDisputeLost, PaymentFailed, ProfileUpdated
from recovery_contracts.recovery import RecoveryPayment
from recovery_dispatcher.domain.outgoing_webhook import generate_whsec_secret
from recovery_runtime.secrets import SecretBox
from support.disputes import dispute_lost as lost_dispute
from support.payments import payment_cancelled, payment_failed, payment_succeeded, recovery_payment

# The master key intake seals with and the dispatcher opens with.
MASTER_KEY = SecretBox({"unit": b"u" * 32}, "unit")
HASH_KEY = "a-profile-hash-key"
WHSEC = generate_whsec_secret()
URL = "https://merchant.example/webhooks"

__all__ = [
    "HASH_KEY",
    "MASTER_KEY",
    "URL",
    "WHSEC",
    "cancelled",
    "deliver",
    "dispute_lost",
    "endpoint_update",
    "failed",
    "payment",
    "succeeded",
    "succeeded_for",
]


def payment() -> RecoveryPayment:
    return recovery_payment(merchant_id="merchant_test", profile_id="pro_test")


def succeeded(of: RecoveryPayment | None = None) -> Envelope[Any]:
    """`payment.succeeded` for a new attempt of `of` (a new payment by default)."""
    return payment_succeeded(of or payment())


def failed(of: RecoveryPayment | None = None) -> Envelope[PaymentFailed]:
    return payment_failed(of or payment())


def cancelled(of: RecoveryPayment | None = None) -> Envelope[Any]:
    return payment_cancelled(of or payment())


def dispute_lost(of: RecoveryPayment | None = None) -> Envelope[PaymentDisputeLost]:
    """Intake's `payment.dispute-lost` for `of` (a new payment by default), lost now: a new dispute each call."""
    return lost_dispute(of or payment(), datetime.now(UTC))


def endpoint_update(
    version: int = 1,
    url: str = URL,
    schedule: tuple[float, ...] | None = None,
    *,
    profile_id: str = "pro_test",
    merchant_id: str = "merchant_test",
    **settings: Any,
) -> Envelope[Any]:
    """`profile.updated` of a profile's webhook settings; `settings`: more `ProfileUpdated` fields (toggles, rate)."""
    return envelope_for(
        MessageType.PROFILE_UPDATED,
        ProfileUpdated(
            profile_id=profile_id,
            merchant_id=merchant_id,
            version=version,
            webhook_url=url,
            payment_response_hash_key=HASH_KEY,
            standard_webhooks_secrets=(WHSEC,),
            webhook_retry_schedule_seconds=schedule,
            **settings,
        ),
        merchant_id=merchant_id,
        profile_id=profile_id,
    )


def succeeded_for(merchant_id: str, profile_id: str) -> Envelope[Any]:
    """`payment.succeeded` for a new payment of another merchant or profile."""
    return payment_succeeded(recovery_payment(merchant_id=merchant_id, profile_id=profile_id))


def deliver(timer_message: dict[str, Any]) -> Envelope[DeliverWebhook]:
    """The `webhook.deliver` a `timer.schedule` asked the scheduler to publish when due."""
    return Envelope[DeliverWebhook].model_validate(timer_message)
