"""A dispute lost on a recovered payment: as the services publish it (intake's `payment.dispute-lost`, the
executor's `record-back.updated` of a try recording it at the billing system as a refund), and as a merchant makes
one happen at the stack's Stripe sandbox (the end-to-end and fault tests)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx

from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, MerchantSetup
from recovery_cli.stack import Stack
from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import PaymentDisputeLost, PaymentDisputeUpdated, RecordBackState, RecordBackUpdated
from recovery_contracts.recovery import RecoveryPayment

_STRIPE = {"Authorization": f"Bearer {SANDBOX_SECRET_KEY}"}


def _about(payment: RecoveryPayment, message_type: MessageType, body: Any, at: datetime) -> Envelope[Any]:
    return envelope_for(
        message_type,
        body,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        occurred_at=at,
    )


def dispute_object(
    payment_id: str,
    amount: int,
    lost_at: datetime,
    *,
    dispute_id: str | None = None,
    currency: str = "USD",
    connector: str = "stripe",
    connector_dispute_id: str | None = None,
    reason: str | None = "fraudulent",
    attempt_id: str | None = None,
    profile_id: str | None = "pro_test",
    merchant_connector_id: str | None = None,
) -> DisputeObject:
    """A dispute lost at `lost_at` on the payment, opened 20 days before (new ids each call unless given)."""
    return DisputeObject(
        dispute_id=dispute_id or f"dsp_{secrets.token_hex(8)}",
        payment_id=payment_id,
        attempt_id=attempt_id or f"att_{payment_id}",
        amount=str(amount),
        currency=currency,
        dispute_stage=DisputeStage.DISPUTE,
        dispute_status=DisputeStatus.DISPUTE_LOST,
        connector=connector,
        connector_status="lost",
        connector_dispute_id=connector_dispute_id or f"dp_{secrets.token_hex(8)}",
        connector_reason=reason,
        connector_created_at=lost_at - timedelta(days=20),
        connector_updated_at=lost_at,
        created_at=lost_at,
        profile_id=profile_id,
        merchant_connector_id=merchant_connector_id,
    )


def dispute_lost(
    payment: RecoveryPayment, lost_at: datetime, *, reason: str | None = "fraudulent", amount: int | None = None
) -> Envelope[PaymentDisputeLost]:
    """Stripe took back `amount` of the payment (else its whole amount) at `lost_at` (a new dispute each call)."""
    taken = payment.amount if amount is None else amount
    dispute = dispute_object(
        payment.payment_id,
        taken,
        lost_at,
        currency=payment.currency,
        connector=payment.connector,
        reason=reason,
        profile_id=payment.profile_id,
        merchant_connector_id=payment.payment_connector_id,
    )
    body = PaymentDisputeLost(
        payment_id=payment.payment_id,
        dispute=dispute,
        connector_transaction_id=f"pi_{payment.payment_id}",
        amount=taken,
        lost_at=lost_at,
    )
    return _about(payment, MessageType.PAYMENT_DISPUTE_LOST, body, lost_at)


def dispute_updated(
    payment: RecoveryPayment, dispute: DisputeObject, status: DisputeStatus, at: datetime, connector_status: str
) -> Envelope[PaymentDisputeUpdated]:
    """Intake's `payment.dispute-updated`: the same dispute, in `status` (Stripe's `connector_status`) since `at`,
    with the message id intake gives it (one per dispute and status)."""
    now = dispute.model_copy(
        update={"dispute_status": status, "connector_status": connector_status, "connector_updated_at": at}
    )
    body = PaymentDisputeUpdated(
        payment_id=payment.payment_id,
        dispute=now,
        connector_transaction_id=f"pi_{payment.payment_id}",
        updated_at=at,
    )
    message = _about(payment, MessageType.PAYMENT_DISPUTE_UPDATED, body, at)
    return message.model_copy(update={"message_id": f"{dispute.dispute_id}:{status}"})


# Stripe's dispute status behind each status intake reports a step of (`dispute_updated`).
_STRIPE_STATUS = {
    DisputeStatus.DISPUTE_OPENED: "needs_response",
    DisputeStatus.DISPUTE_CHALLENGED: "under_review",
    DisputeStatus.DISPUTE_WON: "won",
    DisputeStatus.DISPUTE_CANCELLED: "warning_closed",
}


def dispute_told(payment: RecoveryPayment, at: datetime, *statuses: DisputeStatus) -> list[Envelope[Any]]:
    """A new dispute on the payment as intake tells of it: each of `statuses` a day apart from `at`, a step
    (`payment.dispute-updated`), or its loss (`payment.dispute-lost`, last: a lost dispute has ended)."""
    lost = dispute_lost(payment, at + timedelta(days=len(statuses) - 1))
    return [
        lost
        if status is DisputeStatus.DISPUTE_LOST
        else dispute_updated(payment, lost.payload.dispute, status, at + timedelta(days=n), _STRIPE_STATUS[status])
        for n, status in enumerate(statuses)
    ]


def refund_try(
    payment: RecoveryPayment,
    lost: Envelope[PaymentDisputeLost],
    attempt: int,
    state: RecordBackState,
    at: datetime,
    status_code: int,
    billing_connector: str = "chargebee",
) -> Envelope[RecordBackUpdated]:
    """Try `attempt` of recording the dispute `lost` at the billing system as a refund, and where it stood after."""
    body = RecordBackUpdated(
        payment_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        billing_connector=billing_connector,
        billing_connector_id=payment.billing_connector_id,
        attempt=attempt,
        state=state,
        status_code=status_code,
        at=at,
        dispute_id=lost.payload.dispute.dispute_id,
    )
    return _about(payment, MessageType.RECORD_BACK_UPDATED, body, at)


def lose_dispute(stack: Stack, merchant: MerchantSetup, payment_intent: str) -> dict[str, Any]:
    """At the stack's Stripe sandbox, as a merchant does: a webhook endpoint for `charge.dispute.closed` pointed at
    intake's payment connector door for the merchant's Stripe payment account, its signing secret stored on that
    account; then the customer disputes the PaymentIntent's charge and the merchant accepts the loss. The dispute,
    closed (`lost`)."""
    listen_for_disputes(stack, merchant)
    return close_dispute(stack, payment_intent)


def listen_for_disputes(
    stack: Stack, merchant: MerchantSetup, events: tuple[str, ...] = ("charge.dispute.closed",)
) -> str:
    """The Stripe sandbox's webhook endpoint for `events` (a dispute's ending by default), pointed at intake's payment
    connector door for the merchant's Stripe payment account, its signing secret stored on that account: the door's
    URL."""
    door = f"{stack.intake_url}/v2/webhooks/{merchant.merchant_id}/{merchant.profile_id}/{merchant.payment_mca}"
    endpoint = httpx.post(
        f"{stack.stripe_url}/v1/webhook_endpoints",
        data={"url": door, "enabled_events[]": list(events)},
        headers=_STRIPE,
    ).json()
    details = {"merchant_secret": endpoint["secret"]}
    updated = httpx.put(
        f"{stack.intake_url}/v2/connector-accounts/{merchant.payment_mca}",
        json={"connector_type": "payment_processor", "connector_webhook_details": details},
        headers=merchant.headers(),
    )
    assert updated.status_code == 200, updated.text
    return door


def close_dispute(stack: Stack, payment_intent: str) -> dict[str, Any]:
    """The customer disputes the PaymentIntent's charge at the stack's Stripe sandbox and the merchant accepts the
    loss (Stripe sends `charge.dispute.closed` to the endpoints listening): the dispute, closed (`lost`)."""
    dispute = httpx.post(f"{stack.stripe_url}/_sandbox/disputes", data={"payment_intent": payment_intent}).json()
    closed: dict[str, Any] = httpx.post(f"{stack.stripe_url}/v1/disputes/{dispute['id']}/close", headers=_STRIPE).json()
    assert closed["status"] == "lost", closed
    return closed


def stripe_answers(stack: Stack, event_type: str) -> list[str]:
    """Intake's outcomes (`applied`, `duplicate`, ...) for the sandbox's deliveries of its `event_type` events."""
    book = httpx.get(f"{stack.stripe_url}/_sandbox/events").json()
    ids = {e["id"] for e in book["events"] if e["type"] == event_type}
    return [json.loads(d["answer"])["outcome"] for d in book["deliveries"] if d["event"] in ids]


def redeliver(stack: Stack, event_type: str) -> list[int]:
    """The sandbox's Stripe sends its (first) `event_type` event again; the HTTP statuses the endpoints answered."""
    events = httpx.get(f"{stack.stripe_url}/_sandbox/events").json()["events"]
    event = next(e for e in events if e["type"] == event_type)
    statuses: list[int] = httpx.post(f"{stack.stripe_url}/_sandbox/events/{event['id']}/resend").json()["statuses"]
    return statuses
