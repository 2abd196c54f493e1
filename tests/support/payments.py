"""Recovery snapshots and messages for tests that talk to one service directly over the broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import new_attempt_id, new_payment_id
from recovery_contracts.messages import (
    ConnectorAccountUpdated,
    PaymentCancelled,
    PaymentFailed,
    PaymentSucceeded,
    ProfileUpdated,
    RecordBack,
    RecordBackBody,
    RecoveryScheduled,
)
from recovery_contracts.payments import ErrorDetails, IntentStatus
from recovery_contracts.recovery import (
    AttemptSummary,
    PaymentToken,
    RecoveryPayment,
    RetryAlgorithm,
    RetrySettings,
    build_payment_object,
)


def recovery_payment(
    *,
    merchant_id: str = "merchant_test",
    profile_id: str = "pro_test",
    payment_connector_id: str = "mca_payment",
    tokens: tuple[str, ...] = ("pm_card_visa",),
    customer: str | None = None,
    algorithm: RetryAlgorithm = RetryAlgorithm.CASCADING,
    ladder_seconds: tuple[int, ...] | None = (60, 60, 60, 60),
    **overrides: Any,
) -> RecoveryPayment:
    fields: dict[str, Any] = {
        "payment_id": new_payment_id("12345"),
        "merchant_id": merchant_id,
        "profile_id": profile_id,
        "merchant_reference_id": "invoice_1",
        "amount": 2250,
        "currency": "USD",
        "created_at": datetime.now(UTC),
        "billing_connector_id": "mca_billing",
        "payment_connector_id": payment_connector_id,
        "connector": "stripe",
        "connector_customer_id": customer,
        "payment_method_type": "card",
        "payment_method_subtype": "credit",
        "tokens": tuple(
            PaymentToken(token=t, connector_customer_id=customer, card_network="Visa", card_issuer="Wells Fargo NA")
            for t in tokens
        ),
        "first_error": ErrorDetails(code="110", message="Insufficient Funds"),
        "billing_retry_count": 1,
        "return_url": "https://example.com/return",
        "retry": RetrySettings(algorithm=algorithm, ladder_seconds=ladder_seconds, max_retry_count=9),
    }
    fields.update(overrides)
    return RecoveryPayment(**fields)


def scheduled(payment: RecoveryPayment) -> Envelope[RecoveryScheduled]:
    return Envelope[RecoveryScheduled](
        type=MessageType.RECOVERY_SCHEDULED,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=RecoveryScheduled(payment=payment),
    )


def stripe_account(account_id: str = "mca_payment", api_key: str = "sk_test_integration") -> Envelope[Any]:
    return Envelope[ConnectorAccountUpdated](
        type=MessageType.CONNECTOR_ACCOUNT_UPDATED,
        merchant_id="merchant_test",
        profile_id="pro_test",
        payload=ConnectorAccountUpdated(
            connector_account_id=account_id,
            merchant_id="merchant_test",
            profile_id="pro_test",
            version=1,
            connector_type="payment_processor",
            connector_name="stripe",
            api_key=api_key,
        ),
    )


def profile(webhook_url: str, hash_key: str, whsec: str | None = None, version: int = 1) -> Envelope[Any]:
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id="merchant_test",
        profile_id="pro_test",
        payload=ProfileUpdated(
            profile_id="pro_test",
            merchant_id="merchant_test",
            version=version,
            webhook_url=webhook_url,
            payment_response_hash_key=hash_key,
            standard_webhooks_secrets=(whsec,) if whsec else (),
        ),
    )


def payment_succeeded(
    payment: RecoveryPayment,
    connector_transaction_id: str = "pi_123",
    *,
    attempt_id: str | None = None,
    attempt_number: int = 1,
) -> Envelope[PaymentSucceeded]:
    """The executor's `payment.succeeded` for `payment`'s attempt `attempt_number` (the first; without
    `attempt_id`, a fresh attempt id each call)."""
    now = datetime.now(UTC)
    token = payment.tokens[0].token if payment.tokens else "pm_card_visa"
    return Envelope[PaymentSucceeded](
        type=MessageType.PAYMENT_SUCCEEDED,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=PaymentSucceeded(
            payment_id=payment.payment_id,
            attempt_id=attempt_id or new_attempt_id("12345"),
            attempt_number=attempt_number,
            token=token,
            connector_transaction_id=connector_transaction_id,
            succeeded_at=now,
            payment=build_payment_object(
                payment,
                status=IntentStatus.SUCCEEDED,
                modified_at=now,
                attempt=AttemptSummary(
                    total_retry_count=1, token=token, connector_transaction_id=connector_transaction_id
                ),
            ),
        ),
    )


def payment_failed(payment: RecoveryPayment) -> Envelope[PaymentFailed]:
    """The scheduler's terminal `payment.failed` for `payment` (hard declined; a fresh attempt id each call)."""
    attempt = payment_succeeded(payment).payload
    return envelope_for(
        MessageType.PAYMENT_FAILED,
        PaymentFailed(
            payment_id=payment.payment_id,
            reason="hard_declined",
            business_status="failed",
            attempt_id=attempt.attempt_id,
            payment=build_payment_object(
                payment,
                status=IntentStatus.FAILED,
                modified_at=attempt.succeeded_at,
                attempt=AttemptSummary(total_retry_count=1, token="pm_card_visa"),
            ),
        ),
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


def payment_cancelled(payment: RecoveryPayment) -> Envelope[PaymentCancelled]:
    """The scheduler's `payment.cancelled` for `payment`: the merchant cancelled it before any attempt."""
    return envelope_for(
        MessageType.PAYMENT_CANCELLED,
        PaymentCancelled(
            payment_id=payment.payment_id,
            reason="the merchant cancelled the recovery: pending retries stopped",
            business_status="CANCELLED_BY_MERCHANT",
            payment=build_payment_object(
                payment, status=IntentStatus.CANCELLED, modified_at=payment.created_at, attempt=None
            ),
        ),
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


def webhook_endpoint(url: str, merchant_id: str, profile_id: str) -> Envelope[ProfileUpdated]:
    """`profile.updated` giving a merchant's profile the webhook URL `url` (no signing keys)."""
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=merchant_id,
        profile_id=profile_id,
        payload=ProfileUpdated(profile_id=profile_id, merchant_id=merchant_id, version=1, webhook_url=url),
    )


def record_back(payment_id: str = "12345_pay_1", attempt: int = 1) -> Envelope[RecordBack]:
    """The executor's record back of a recovered payment (the `custombilling` callback), try `attempt`."""
    return envelope_for(
        MessageType.RECORD_BACK,
        RecordBack(
            payment_id=payment_id,
            url="https://billing.example/record-back",
            body=RecordBackBody(
                merchant_reference_id="invoice_1",
                amount=2250,
                currency="USD",
                payment_method_type="card",
                attempt_status="charged",
                connector_transaction_id="pi_approved",
            ),
            attempt=attempt,
        ),
        correlation_id=payment_id,
        merchant_id="merchant_test",
        profile_id="pro_test",
    )
