"""The messages the executor consumes, built as their producers build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import new_attempt_id
from recovery_contracts.messages import (
    ConnectorAccountUpdated,
    ExecuteRetry,
    PaymentDisputeLost,
    PaymentSync,
    RecordBack,
    RecoveryUpdated,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.secrets import SecretBox
from support.disputes import dispute_object
from support.payments import record_back, recovery_payment

ACCOUNT = "mca_payment"


def planned(
    payment: RecoveryPayment | None = None, *, attempt_number: int = 1, **payment_fields: Any
) -> Envelope[ExecuteRetry]:
    """The scheduler's EXECUTE for a planned attempt (a new attempt id each call)."""
    payment = payment or recovery_payment(**{"payment_connector_id": ACCOUNT, "customer": "cus_1", **payment_fields})
    return envelope_for(
        MessageType.EXECUTE_RETRY,
        ExecuteRetry(
            payment=payment,
            attempt_id=new_attempt_id("12345"),
            attempt_number=attempt_number,
            token=payment.tokens[0],
            planned_at=datetime.now(UTC),
            total_retry_count=2,
        ),
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


def from_a_changed_snapshot(command: Envelope[ExecuteRetry], **payment_fields: Any) -> Envelope[ExecuteRetry]:
    """A later copy of `command` (the same attempt) built from the payment snapshot as it is by then."""
    execute = command.payload
    payload = execute.model_copy(update={"payment": execute.payment.model_copy(update=payment_fields)})
    return command.model_copy(update={"message_id": f"{command.message_id}-later", "payload": payload})


def payment_sync(execute: Envelope[ExecuteRetry], sync_number: int = 1) -> Envelope[PaymentSync]:
    """The PSYNC a timer brings back (as the executor asked for it)."""
    return envelope_for(
        MessageType.PAYMENT_SYNC,
        PaymentSync(execute=execute.payload, execute_message_id=execute.message_id, sync_number=sync_number),
        caused_by=execute,
    )


def recovery_updated(payment: RecoveryPayment, status: IntentStatus, version: int) -> Envelope[RecoveryUpdated]:
    return envelope_for(
        MessageType.RECOVERY_UPDATED,
        RecoveryUpdated(payment=payment, action="cancel", intent_status=status, version=version),
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
    )


def connector_account(
    version: int = 1, *, connector_name: str = "stripe", disabled: bool = False
) -> Envelope[ConnectorAccountUpdated]:
    return envelope_for(
        MessageType.CONNECTOR_ACCOUNT_UPDATED,
        ConnectorAccountUpdated(
            connector_account_id=ACCOUNT,
            merchant_id="merchant_test",
            profile_id="pro_test",
            version=version,
            connector_type="payment_processor",
            connector_name=connector_name,
            api_key="sealed-key",
            disabled=disabled,
        ),
        merchant_id="merchant_test",
        profile_id="pro_test",
    )


def billing_account(account_id: str, connector_name: str, api_key: str) -> Envelope[ConnectorAccountUpdated]:
    """A billing connector account with its API key sealed as intake seals it (the executor's default secrets)."""
    return envelope_for(
        MessageType.CONNECTOR_ACCOUNT_UPDATED,
        ConnectorAccountUpdated(
            connector_account_id=account_id,
            merchant_id="merchant_test",
            profile_id="pro_test",
            version=1,
            connector_type="billing_processor",
            connector_name=connector_name,
            api_key=SecretBox.from_settings(ExecutorSettings()).seal(api_key),
            disabled=False,
        ),
    )


def record_back_at(
    invoice_id: str,
    payment_id: str = "12345_pay_1",
    *,
    system: str = "stripebilling",
    account: str = "mca_stripebilling",
    url: str = "",
) -> Envelope[RecordBack]:
    """The record back of `invoice_id` at a billing system (`url`: the billing account's record_back_url)."""
    generic = record_back(payment_id)
    body = generic.payload.body.model_copy(update={"merchant_reference_id": invoice_id})
    payload = generic.payload.model_copy(
        update={"url": url, "body": body, "billing_connector": system, "billing_connector_id": account}
    )
    return generic.model_copy(update={"payload": payload})


LOST_AT = datetime(2026, 2, 20, 9, 30, tzinfo=UTC)


def dispute_lost(
    payment_id: str = "12345_pay_1",
    dispute_id: str = "dp_lost_1",
    *,
    amount: int = 2250,
    reason: str | None = "fraudulent",
    merchant_id: str = "merchant_test",
) -> Envelope[PaymentDisputeLost]:
    """Intake's `payment.dispute-lost`: Stripe decided dispute `dispute_id` against the merchant on the payment's
    charge (`pi_approved`, as the record back bodies here name it) and took `amount` back at LOST_AT."""
    dispute = dispute_object(
        payment_id,
        amount,
        LOST_AT,
        dispute_id=dispute_id,
        connector_dispute_id=f"du_{dispute_id}",
        reason=reason,
        attempt_id=new_attempt_id("12345"),
    )
    lost = PaymentDisputeLost(
        payment_id=payment_id, dispute=dispute, connector_transaction_id="pi_approved", amount=amount, lost_at=LOST_AT
    )
    return envelope_for(
        MessageType.PAYMENT_DISPUTE_LOST,
        lost,
        correlation_id=payment_id,
        merchant_id=merchant_id,
        profile_id="pro_test",
    )
