"""The messages the executor consumes, built as their producers build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import new_attempt_id
from recovery_contracts.messages import (
    ConnectorAccountUpdated,
    ExecuteRetry,
    PaymentSync,
    RecoveryUpdated,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment
from support.payments import recovery_payment

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
