"""Messages the scheduler consumes, for one recovery whose clock stands at the fake clock's start (T0)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import (
    AttemptOutcome,
    DeliverWebhook,
    PaymentAttemptFailed,
    PaymentAttemptRefused,
    PaymentSucceeded,
    RecoveryUpdated,
    ScheduleTimer,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, RecoveryPayment, RetryAlgorithm, build_payment_object
from recovery_runtime.testing import FixedClock
from support.payments import record_back, recovery_payment

T0 = FixedClock().now()


def payment(**overrides: Any) -> RecoveryPayment:
    return recovery_payment(**{"created_at": T0, "transaction_created_at": T0, **overrides})


def merchant_payment(merchant_id: str = "merchant_test", **overrides: Any) -> RecoveryPayment:
    """A payment of `merchant_id` whose billing-system failure lies 40 days back, outside every network window: only
    this system's attempts count on its cards."""
    return payment(**{"merchant_id": merchant_id, "transaction_created_at": T0 - timedelta(days=40), **overrides})


def monitoring_payment(monitoring_seconds: int = 3600) -> RecoveryPayment:
    """Monitoring for `monitoring_seconds`, then cascading takes over."""
    base = payment(algorithm=RetryAlgorithm.MONITORING)
    retry = base.retry.model_copy(update={"monitoring_threshold_seconds": monitoring_seconds})
    return base.model_copy(update={"retry": retry})


def _about(payment: RecoveryPayment, message_type: MessageType, body: Any) -> Envelope[Any]:
    return envelope_for(
        message_type,
        body,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


def attempt_failed(
    payment: RecoveryPayment,
    attempt_number: int = 1,
    decline_code: str | None = "insufficient_funds",
    *,
    token: str | None = None,
    at: datetime | None = None,
    outcome: AttemptOutcome = AttemptOutcome.DECLINED,
    error_code: str = "card_declined",
) -> Envelope[PaymentAttemptFailed]:
    return _about(
        payment,
        MessageType.PAYMENT_ATTEMPT_FAILED,
        PaymentAttemptFailed(
            payment_id=payment.payment_id,
            attempt_id=f"12345_att_failed_{attempt_number}",
            attempt_number=attempt_number,
            token=token or payment.tokens[0].token,
            outcome=outcome,
            decline_code=decline_code,
            error_code=error_code,
            message="Your card was declined.",
            connector_transaction_id=f"pi_declined_{attempt_number}",
            attempted_at=at or T0 + timedelta(minutes=5),
        ),
    )


def attempt_refused(
    payment: RecoveryPayment, attempt_number: int, attempt_id: str, reason: str = "the invoice was cancelled"
) -> Envelope[PaymentAttemptRefused]:
    """The executor's refusal of planned attempt `attempt_number` (`attempt_id`: the plan's)."""
    refused = PaymentAttemptRefused(
        payment_id=payment.payment_id,
        attempt_id=attempt_id,
        attempt_number=attempt_number,
        token=payment.tokens[0].token,
        reason=reason,
        refused_at=T0,
    )
    return _about(payment, MessageType.PAYMENT_ATTEMPT_REFUSED, refused)


def payment_succeeded(payment: RecoveryPayment, attempt_number: int = 1) -> Envelope[PaymentSucceeded]:
    at = T0 + timedelta(minutes=5)
    token = payment.tokens[0].token
    return _about(
        payment,
        MessageType.PAYMENT_SUCCEEDED,
        PaymentSucceeded(
            payment_id=payment.payment_id,
            attempt_id=f"12345_att_ok_{attempt_number}",
            attempt_number=attempt_number,
            token=token,
            connector_transaction_id="pi_approved",
            succeeded_at=at,
            payment=build_payment_object(
                payment,
                status=IntentStatus.SUCCEEDED,
                modified_at=at,
                attempt=AttemptSummary(total_retry_count=2, token=token, connector_transaction_id="pi_approved"),
            ),
        ),
    )


def recovery_updated(
    payment: RecoveryPayment,
    action: str,
    version: int,
    tokens_added: tuple[str, ...] = (),
    *,
    by_merchant: bool = False,
) -> Envelope[RecoveryUpdated]:
    status = IntentStatus.CANCELLED if action == "cancel_invoice" else IntentStatus.FAILED
    return _about(
        payment,
        MessageType.RECOVERY_UPDATED,
        RecoveryUpdated(
            payment=payment,
            action=action,
            intent_status=status,
            version=version,
            tokens_added=tokens_added,
            by_merchant=by_merchant,
        ),
    )


def record_back_timer(payment_id: str, due_at: datetime) -> Envelope[ScheduleTimer]:
    """The executor's request: try the payment's record back again at `due_at` (its second try)."""
    again = record_back(payment_id, attempt=2)
    timer = ScheduleTimer(
        timer_id=f"record-back:{payment_id}:2",
        due_at=due_at,
        kind="record_back",
        payment_id=payment_id,
        message=again.model_dump(mode="json"),
    )
    return envelope_for(MessageType.SCHEDULE_TIMER, timer, correlation_id=payment_id)


def webhook_timer(due_at: datetime, timer_id: str = "webhook:evt_1:1", **message: Any) -> Envelope[ScheduleTimer]:
    """The dispatcher's request: deliver a webhook again at `due_at`."""
    deliver = envelope_for(
        MessageType.DELIVER_WEBHOOK, DeliverWebhook(initial_attempt_id="evt_1", retry_index=1), correlation_id="pay_1"
    )
    return envelope_for(
        MessageType.SCHEDULE_TIMER,
        ScheduleTimer(
            timer_id=timer_id,
            due_at=due_at,
            kind="webhook_retry",
            payment_id="pay_1",
            message={**deliver.model_dump(mode="json"), **message},
        ),
        correlation_id="pay_1",
    )
