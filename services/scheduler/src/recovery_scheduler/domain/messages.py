"""The messages a recovery's plan sends: the executor's command, the terminal failure event, and a monitoring
recovery's shadow plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from recovery_contracts.messages import ExecuteRetry, PaymentFailed, RecoveryShadowPlanned, ShadowPlan
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
    from .recovery import Attempt


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
    last = attempts[-1]
    return PaymentFailed(
        payment_id=payment.payment_id,
        reason=decision.reason,
        business_status=decision.business_status,
        attempt_id=last.attempt_id,
        payment=build_payment_object(
            payment,
            status=IntentStatus.FAILED,
            modified_at=now,
            attempt=AttemptSummary(
                total_retry_count=payment.billing_retry_count + len(attempts),
                token=last.token,
                connector_transaction_id=last.connector_transaction_id,
                transmission=ConnectorTransmission.UNSUCCESSFUL,
                error=PaymentError(
                    code=last.codes.decline_code or last.codes.error_code or "unknown",
                    message=last.message or decision.reason,
                    network_advice_code=last.codes.network_advice_code,
                    network_decline_code=last.codes.network_decline_code,
                ),
            ),
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
