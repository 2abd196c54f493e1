"""What a recovery's transitions take from outside (time, randomness, ids, budgets) and what they give back."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ExecuteRetry, PaymentFailed
from recovery_contracts.payments import ConnectorTransmission, IntentStatus, PaymentError
from recovery_contracts.recovery import AttemptSummary, PaymentToken, RecoveryPayment, build_payment_object

from .config import RetryConfig
from .decisions import EndRecovery
from .model import Algorithm, AttemptRecord, RecoveryView, TokenState
from .timers import Timer

if TYPE_CHECKING:
    from .recovery import Attempt, Recovery

# How far back other recoveries' attempts on the same cards count: the longest network-budget window (rolling
# 30 days) and a day's margin.
BUDGET_LOOKBACK = timedelta(days=31)


class Ids(Protocol):
    """New ids for what a plan creates (time-ordered ids read the clock: they come from outside)."""

    def attempt_id(self) -> str: ...

    def message_id(self) -> str: ...


@dataclass(frozen=True)
class Planning:
    """Everything a transition that may plan needs from outside the recovery."""

    now: datetime
    rng: random.Random
    ids: Ids
    # Business seconds per wall-clock second (TIME_SCALE): a planned business time becomes a timer's due time.
    time_scale: float = 1.0
    # Attempts of other recoveries on the same cards since now - BUDGET_LOOKBACK, by token: they spend the same
    # network budgets. None: not looked up (a transition that plans then refuses).
    other_attempts_at: Mapping[str, Sequence[datetime]] | None = None
    # The message being applied: what the plan sends carries it as its cause.
    cause: Envelope[Any] | None = None

    def budgets_spent(self) -> Mapping[str, Sequence[datetime]]:
        if self.other_attempts_at is None:
            raise ValueError("planning needs the attempts other recoveries made on the same cards")
        return self.other_attempts_at

    def wall_time(self, business_at: datetime) -> datetime:
        """A planned business time as the wall-clock due time under the time scale."""
        if business_at <= self.now:
            return self.now
        return self.now + (business_at - self.now) / self.time_scale

    def message(self, message_type: MessageType, payload: Any, payment: RecoveryPayment) -> Envelope[Any]:
        return envelope_for(
            message_type,
            payload,
            caused_by=self.cause,
            correlation_id=payment.payment_id,
            merchant_id=payment.merchant_id,
            profile_id=payment.profile_id,
            message_id=self.ids.message_id(),
            occurred_at=self.now,
        )


@dataclass(frozen=True)
class Change:
    """A transition's result: the recovery after it, the timers to store, whether the recovery's planned timers
    still pending are cancelled (before the new ones are stored), and the messages to send."""

    before: Recovery | None  # None: a recovery that is not stored yet
    recovery: Recovery
    timers: tuple[Timer, ...] = ()
    cancels_planned_timers: bool = False
    messages: tuple[Envelope[Any], ...] = ()

    @property
    def is_new(self) -> bool:
        return self.before is None

    @property
    def changed(self) -> bool:
        return self.before is not self.recovery


def retry_config(payment: RecoveryPayment) -> RetryConfig:
    """The retry settings the recovery was accepted with, as the planner takes them."""
    settings = payment.retry
    kwargs: dict[str, Any] = {
        "min_jitter": timedelta(seconds=settings.min_jitter_seconds),
        "max_jitter": timedelta(seconds=settings.max_jitter_seconds),
        "max_retry_count": settings.max_retry_count,
        "billing_connector_retry_threshold": settings.billing_connector_retry_threshold,
        "switch_retry_threshold": settings.switch_retry_threshold or None,
        "switch_time_threshold_after_creation": (
            timedelta(seconds=settings.switch_time_threshold_after_creation_seconds)
            if settings.switch_time_threshold_after_creation_seconds
            else None
        ),
        "monitoring_threshold": (
            timedelta(seconds=settings.monitoring_threshold_seconds) if settings.monitoring_threshold_seconds else None
        ),
        "active_algorithm": Algorithm(settings.active_algorithm.value),
    }
    if settings.ladder_seconds:
        kwargs["ladder"] = tuple(timedelta(seconds=s) for s in settings.ladder_seconds)
    return RetryConfig(**kwargs)


def planner_view(recovery: Recovery, others: Mapping[str, Sequence[datetime]]) -> RecoveryView:
    """The recovery as the planner (`decide_next`) sees it."""
    payment = recovery.payment
    hard = set(recovery.hard_declined_tokens)
    first = payment.first_error
    return RecoveryView(
        algorithm=recovery.algorithm,
        tokens=tuple(
            TokenState(
                token=t.token,
                card_network=t.card_network,
                card_issuer=t.card_issuer,
                hard_declined=t.token in hard,
                card_updated_at=recovery.card_updated_at.get(t.token),
                other_attempts_at=tuple(sorted(others.get(t.token, ()))),
            )
            for t in payment.tokens
        ),
        created_at=payment.created_at,
        attempts=tuple(
            AttemptRecord(
                number=a.number,
                token=a.token,
                at=a.at,
                outcome=a.outcome,
                decline_code=a.decline_code,
                error_code=a.error_code,
                advice_code=a.advice_code,
                network_advice_code=a.network_advice_code,
                network_decline_code=a.network_decline_code,
            )
            for a in recovery.attempts
        ),
        billing_retry_count=payment.billing_retry_count,
        billing_last_attempt_at=payment.transaction_created_at,
        first_error_code=first.code if first else None,
        first_decline_code=first.code if first else None,
        first_network_advice_code=first.network_advice_code if first else None,
        first_network_decline_code=first.network_decline_code if first else None,
    )


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
                    code=last.decline_code or last.error_code or "unknown",
                    message=last.message or decision.reason,
                    network_advice_code=last.network_advice_code,
                    network_decline_code=last.network_decline_code,
                ),
            ),
        ),
    )
