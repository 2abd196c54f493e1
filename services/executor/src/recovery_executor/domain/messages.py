"""The messages the executor emits: an attempt's outcome, the record back after a success, durable timers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import (
    AttemptOutcome,
    ExecuteRetry,
    PaymentAttemptFailed,
    PaymentAttemptRefused,
    PaymentSucceeded,
    PaymentSync,
    RecordBack,
    RecordBackBody,
    RecordBackUpdated,
    ScheduleTimer,
    timer_for,
)
from recovery_contracts.payments import ConnectorTransmission, IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object

from .billing_systems import billing_system_of
from .connector import ChargeOutcome, ChargeOutcomeKind

if TYPE_CHECKING:
    from .record_back import RecordBackProgress, RecordBackTry

PSYNC_TIMER_KIND = "payment_sync"
RECORD_BACK_TIMER_KIND = "record_back"


def outcome_message(command: ExecuteRetry, cause: str, outcome: ChargeOutcome, now: datetime) -> Envelope[Any]:
    """`payment.succeeded` (with the payment object the webhook sends) or `payment.attempt-failed` (with the
    connector's codes, for the scheduler's retry rules)."""
    if outcome.kind is ChargeOutcomeKind.SUCCEEDED:
        return _of_attempt(MessageType.PAYMENT_SUCCEEDED, _succeeded(command, outcome, now), command, cause)
    failed = PaymentAttemptFailed(
        payment_id=command.payment.payment_id,
        attempt_id=command.attempt_id,
        attempt_number=command.attempt_number,
        token=command.token.token,
        outcome=AttemptOutcome.DECLINED if outcome.kind is ChargeOutcomeKind.DECLINED else AttemptOutcome.ERROR,
        error_code=outcome.error_code,
        decline_code=outcome.decline_code,
        message=outcome.message,
        advice_code=outcome.advice_code,
        network_advice_code=outcome.network_advice_code,
        network_decline_code=outcome.network_decline_code,
        connector_transaction_id=outcome.connector_transaction_id,
        attempted_at=now,
    )
    return _of_attempt(MessageType.PAYMENT_ATTEMPT_FAILED, failed, command, cause)


def refusal_message(command: ExecuteRetry, cause: str, reason: str, now: datetime) -> Envelope[Any]:
    """`payment.attempt-refused`: nothing was sent for the attempt, so that its recovery does not wait for an
    outcome that will never come."""
    refused = PaymentAttemptRefused(
        payment_id=command.payment.payment_id,
        attempt_id=command.attempt_id,
        attempt_number=command.attempt_number,
        token=command.token.token,
        reason=reason,
        refused_at=now,
    )
    return _of_attempt(MessageType.PAYMENT_ATTEMPT_REFUSED, refused, command, cause)


def _succeeded(command: ExecuteRetry, outcome: ChargeOutcome, now: datetime) -> PaymentSucceeded:
    payment = command.payment
    payment_object = build_payment_object(
        payment,
        status=IntentStatus.SUCCEEDED,
        modified_at=now,
        attempt=AttemptSummary(
            total_retry_count=command.total_retry_count,
            token=command.token.token,
            connector_transaction_id=outcome.connector_transaction_id,
            transmission=ConnectorTransmission.SUCCEEDED,
        ),
    )
    return PaymentSucceeded(
        payment_id=payment.payment_id,
        attempt_id=command.attempt_id,
        attempt_number=command.attempt_number,
        token=command.token.token,
        connector_transaction_id=outcome.connector_transaction_id or "",
        succeeded_at=now,
        payment=payment_object,
    )


def record_back_command(command: ExecuteRetry, outcome: ChargeOutcome, cause: str) -> Envelope[RecordBack]:
    """Hyperswitch's InvoiceRecordBack body for a successful retry; for a billing system recorded through its own
    API, which one and the billing connector account to call it with."""
    payment = command.payment
    request = RecordBack(
        payment_id=payment.payment_id,
        url=payment.record_back_url or "",
        body=RecordBackBody(
            merchant_reference_id=payment.merchant_reference_id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method_type=payment.payment_method_type,
            attempt_status="charged",
            connector_transaction_id=outcome.connector_transaction_id,
        ),
        billing_connector=billing_system_of(payment),
        billing_connector_id=payment.billing_connector_id if billing_system_of(payment) else None,
    )
    return _of_attempt(MessageType.RECORD_BACK, request, command, cause)


def psync_timer(
    attempt_key: str, command: ExecuteRetry, consumed: Envelope[Any], cause: str, sync_number: int, due_at: datetime
) -> Envelope[ScheduleTimer]:
    """The PSYNC that comes back at `due_at` to ask the connector what became of the attempt."""
    payment = command.payment
    sync = envelope_for(
        MessageType.PAYMENT_SYNC,
        PaymentSync(execute=command, execute_message_id=cause, sync_number=sync_number),
        caused_by=consumed,
        about=payment,
    )
    timer_id = f"psync:{attempt_key}:{sync_number}"
    return timer_for(sync, timer_id=timer_id, due_at=due_at, kind=PSYNC_TIMER_KIND, caused_by=consumed)


def record_back_retry(consumed: Envelope[RecordBack], key: str, due_at: datetime) -> Envelope[ScheduleTimer]:
    """The next try of a record back the billing connector did not accept (the record `key`: the payment's, or a
    lost dispute's refund), at `due_at`."""
    request = consumed.payload
    again = envelope_for(
        MessageType.RECORD_BACK,
        request.model_copy(update={"attempt": request.attempt + 1}),
        caused_by=consumed,
        correlation_id=request.payment_id,
    )
    timer_id = record_back_timer_id(key, request.attempt + 1)
    return timer_for(again, timer_id=timer_id, due_at=due_at, kind=RECORD_BACK_TIMER_KIND, caused_by=consumed)


def record_back_restarted(
    request: RecordBack,
    key: str,
    merchant_id: str | None,
    profile_id: str | None,
    now: datetime,
    due_at: datetime | None,
) -> Envelope[Any]:
    """The first try of a record back an operator started again: sent now, or on a timer due at `due_at`."""
    again = envelope_for(
        MessageType.RECORD_BACK,
        request,
        correlation_id=request.payment_id,
        merchant_id=merchant_id,
        profile_id=profile_id,
        occurred_at=now,
    )
    if due_at is None:
        return again
    timer_id = record_back_timer_id(key, request.attempt)
    return timer_for(again, timer_id=timer_id, due_at=due_at, kind=RECORD_BACK_TIMER_KIND)


def record_back_timer_id(key: str, attempt: int) -> str:
    """A try's timer, by record (`record_back_key`): a refund's never meets the payment's own tries."""
    return f"record-back:{key}:{attempt}"


def dispute_refund_command(
    request: RecordBack, consumed: Envelope[Any], merchant_id: str | None, profile_id: str | None
) -> Envelope[RecordBack]:
    """The first try of the refund record of a lost dispute (`request.dispute`), caused by `payment.dispute-lost`
    (`consumed`), for the payment's merchant and profile."""
    return envelope_for(
        MessageType.RECORD_BACK,
        request,
        caused_by=consumed,
        correlation_id=request.payment_id,
        merchant_id=merchant_id,
        profile_id=profile_id,
    )


def record_back_updated(
    consumed: Envelope[RecordBack], progress: RecordBackProgress, tried: RecordBackTry
) -> Envelope[RecordBackUpdated]:
    """The event of one record-back try (`tried`, of the command `consumed`, leaving the record back at
    `progress`) for the read side's timeline."""
    request = consumed.payload
    event = RecordBackUpdated(
        payment_id=request.payment_id,
        merchant_id=consumed.merchant_id,
        profile_id=consumed.profile_id,
        billing_connector=progress.billing_connector,
        billing_connector_id=request.billing_connector_id,
        attempt=tried.attempt,
        state=progress.status,
        status_code=tried.status_code,
        error=tried.error,
        at=tried.at,
        dispute_id=progress.dispute_id,
    )
    return envelope_for(MessageType.RECORD_BACK_UPDATED, event, caused_by=consumed, correlation_id=request.payment_id)


def _of_attempt(message_type: MessageType, payload: BaseModel, command: ExecuteRetry, cause: str) -> Envelope[Any]:
    """A message about the attempt, caused by the EXECUTE command that planned it (`cause`, its message id)."""
    payment = command.payment
    return envelope_for(
        message_type,
        payload,
        causation_id=cause,
        about=payment,
    )
