"""The messages a recovery sends: the executor's command, the terminal failure and cancellation events, and a
monitoring recovery's shadow plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from recovery_contracts.messages import (
    ExecuteRetry,
    PaymentCancelled,
    PaymentFailed,
    RecoveryShadowPlanned,
    ShadowPlan,
)
from recovery_contracts.payments import ConnectorTransmission, IntentStatus, PaymentError
from recovery_contracts.recovery import (
    AttemptSummary,
    PaymentToken,
    RecoveryPayment,
    RetryAlgorithm,
    build_payment_object,
)

from .model import Algorithm, EndRecovery

if TYPE_CHECKING:
    from .model import Attempt


def execute_retry(
    payment: RecoveryPayment, token: PaymentToken, attempt_id: str, attempt_number: int, planned_at: datetime
) -> ExecuteRetry:
    return ExecuteRetry(
        payment=payment,
        attempt_id=attempt_id,
        attempt_number=attempt_number,
        token=token,
        planned_at=planned_at,
        total_retry_count=payment.billing_retry_count + attempt_number,
    )


def payment_failed(
    payment: RecoveryPayment, decision: EndRecovery, attempts: Sequence[Attempt], now: datetime
) -> PaymentFailed:
    """The terminal event of a recovery that ended without success after attempts of this system."""
    return PaymentFailed(
        payment_id=payment.payment_id,
        reason=decision.reason,
        business_status=decision.business_status,
        attempt_id=attempts[-1].attempt_id,
        payment=build_payment_object(
            payment,
            status=IntentStatus.FAILED,
            modified_at=now,
            attempt=_last_attempt(payment, attempts, decision.reason),
        ),
    )


def payment_cancelled(
    payment: RecoveryPayment, business_status: str, reason: str, attempts: Sequence[Attempt], now: datetime
) -> PaymentCancelled:
    """The event of a recovery cancelled before it recovered the payment; the payment object shows the last attempt
    of this system, if it made any."""
    return PaymentCancelled(
        payment_id=payment.payment_id,
        reason=reason,
        business_status=business_status,
        payment=build_payment_object(
            payment,
            status=IntentStatus.CANCELLED,
            modified_at=now,
            attempt=_last_attempt(payment, attempts, reason) if attempts else None,
        ),
    )


def _last_attempt(payment: RecoveryPayment, attempts: Sequence[Attempt], reason: str) -> AttemptSummary:
    """The payment object's account of this system's last attempt, which did not succeed."""
    last = attempts[-1]
    return AttemptSummary(
        total_retry_count=payment.billing_retry_count + len(attempts),
        token=last.token,
        connector_transaction_id=last.connector_transaction_id,
        transmission=ConnectorTransmission.UNSUCCESSFUL,
        error=PaymentError(
            code=last.codes.decline_code or last.codes.error_code or "unknown",
            message=last.message or reason,
            network_advice_code=last.codes.network_advice_code,
            network_decline_code=last.codes.network_decline_code,
        ),
    )


def shadow_planned(
    payment: RecoveryPayment,
    shadows: Mapping[str, Mapping[str, object]],
    active: Algorithm,
    switch_at: datetime | None,
    now: datetime,
) -> RecoveryShadowPlanned:
    """What each compared algorithm would do now (`shadows`: the plans as the recovery describes them, by name),
    for the read side's timeline."""
    return RecoveryShadowPlanned(
        payment_id=payment.payment_id,
        active_algorithm=RetryAlgorithm(active.value),
        switch_at=switch_at,
        shadows=tuple(ShadowPlan.model_validate({"algorithm": name, **plan}) for name, plan in shadows.items()),
        at=now,
    )
