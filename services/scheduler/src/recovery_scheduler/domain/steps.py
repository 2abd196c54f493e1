"""A recovery's next step: the planner's decision (`decide_next`) as the plan, its timer and the messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.recovery import PaymentToken, RecoveryPayment

from .budgets import CardUse
from .card_budgets import BUDGET_LOOKBACK
from .config import RetryConfig
from .declines import first_failure_codes
from .learned_hours import HourRates
from .messages import execute_retry, payment_failed, shadow_planned
from .model import (
    Algorithm,
    AwaitBillingSystem,
    Decision,
    EndOutcome,
    EndRecovery,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
    end_recovery,
)
from .planner import decide_next
from .planning import Change, Planning
from .plans import AttemptPlan, AwaitBillingPlan, MonitoringPlan, ReplanPlan, describe_decision, shadow_summary
from .retry_stats import attempt_key
from .status import RecoveryStatus
from .timers import Timer, TimerKind, TimerPurpose, attempt_timer_id, replan_timer_id

if TYPE_CHECKING:
    from .recovery import Recovery


def next_step(recovery: Recovery, planning: Planning, *, new: bool = False) -> Change:
    """Ask the planner and record its answer (`new`: nothing of the recovery is stored yet, so there are no
    timers to cancel). Past its horizon a recovery ends, whatever it was waiting for."""
    now = planning.now
    horizon = planning.horizon_at(recovery)
    if now >= horizon:
        since = f"{_duration(planning.horizon)} of business time since the payment was created"
        return horizon_reached(recovery, since, planning, new)
    if recovery.paused:
        return awaiting_billing(recovery, None, planning)
    switch_at = monitoring_switch_at(recovery.payment, planning)
    if recovery.algorithm is Algorithm.MONITORING and switch_at is not None and now >= switch_at:
        active = Algorithm(recovery.payment.retry.active_algorithm.value)
        recovery = replace(recovery, algorithm=active).noted(
            now, "algorithm_switched", f"the profile's monitoring period is over: {active.value} takes over"
        )
    view = planner_view(recovery, planning)
    decision = decide_next(view, now, retry_config(recovery.payment), planning.rng)
    change = _decided(recovery, decision, planning, new)
    return replace(change, recovery=replace(change.recovery, updated_at=now))


def _duration(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        return f"{span.days} day" + ("s" if span.days != 1 else "")
    return f"{span.total_seconds() / 3600:g} hours"


def monitoring_switch_at(payment: RecoveryPayment, planning: Planning) -> datetime | None:
    """When the profile's monitoring period ends (wall clock), as Hyperswitch counts it: the threshold from when
    the profile chose monitoring (`monitoring_started_at`), not from each payment. None: monitoring without an end
    (no threshold)."""
    settings = payment.retry
    if not settings.monitoring_threshold_seconds:
        return None
    started = monitoring_started_at(payment) or payment.created_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return planning.elapsed(started, timedelta(seconds=settings.monitoring_threshold_seconds))


def monitoring_started_at(payment: RecoveryPayment) -> datetime | None:
    """When the profile chose monitoring, as intake carries it (`monitoring_configured_at`; a snapshot from before it
    was carried: the profile's creation, monitoring being a profile's default)."""
    return payment.retry.monitoring_configured_at or payment.retry.profile_created_at


def horizon_reached(recovery: Recovery, reason: str, planning: Planning, new: bool) -> Change:
    decision = end_recovery(EndOutcome.HORIZON_REACHED, f"horizon_reached: {reason}", len(recovery.attempts))
    return _ended(replace(recovery, paused=False), decision, planning, new)


def awaiting_billing(recovery: Recovery, reason: str | None, planning: Planning) -> Change:
    """Nothing planned until the billing system reports again, or the horizon: a re-plan timer at the horizon
    ends the recovery then. `reason` None: the plan that stands (paused) keeps its reason."""
    if reason is None:
        reason = recovery.plan.reason if isinstance(recovery.plan, AwaitBillingPlan) else "waiting for billing"
    due = planning.horizon_at(recovery)
    timer_id = replan_timer_id(recovery.payment_id, recovery.version)
    timer = Timer(timer_id, TimerKind.REPLAN, due, recovery.payment_id, TimerPurpose.REPLAN.value, planning.now)
    plan = AwaitBillingPlan(reason, due, timer_id)
    return Change(None, replace(recovery, status=RecoveryStatus.AWAITING_BILLING, plan=plan), (timer,))


def attempt_planned(recovery: Recovery, decision: ScheduleAttempt, planning: Planning) -> tuple[Recovery, Timer]:
    """Attempt `decision.attempt_number` on its timer, the command to the executor in it."""
    payment, now = recovery.payment, planning.now
    token = next(t for t in payment.tokens if t.token == decision.token)
    due = planning.wall_time(decision.at)
    attempt_id = planning.ids.attempt_id()
    command = execute_retry(payment, token, attempt_id, decision.attempt_number, decision.at)
    planned_before = any(
        n.what == "attempt_planned" and n.details.get("attempt_number") == decision.attempt_number
        for n in recovery.history
    )
    timer_id = attempt_timer_id(recovery.payment_id, decision.attempt_number, recovery.version, planned_before)
    timer = Timer(
        timer_id,
        TimerKind.MESSAGE,
        due,
        recovery.payment_id,
        TimerPurpose.EXECUTE_RETRY.value,
        now,
        planning.message(MessageType.EXECUTE_RETRY, command, payment),
    )
    plan = AttemptPlan(
        decision.attempt_number,
        attempt_id,
        decision.token,
        decision.at,
        due,
        timer_id,
        decision.reason,
        decision.held_until,
        decision.held_card,
        decision.resumed_at,
    )
    planned = replace(recovery, status=RecoveryStatus.SCHEDULED, plan=plan).noted(
        now,
        "attempt_planned",
        decision.reason,
        attempt_number=decision.attempt_number,
        attempt_id=attempt_id,
        planned_at=decision.at,
        due_at=due,
    )
    return planned, timer


def _decided(recovery: Recovery, decision: Decision, planning: Planning, new: bool) -> Change:
    horizon = planning.horizon_at(recovery)
    if isinstance(decision, ScheduleAttempt):
        if planning.wall_time(decision.at) > horizon:
            reason = f"the next attempt ({decision.at.isoformat()}) would fall after the horizon"
            return horizon_reached(recovery, reason, planning, new)
        planned, timer = attempt_planned(recovery, decision, planning)
        return Change(None, planned, (timer,))
    if isinstance(decision, Recheck):
        planned, timer = replan_planned(recovery, decision.at, decision.reason, planning)
        return Change(None, planned, (timer,))
    if isinstance(decision, AwaitBillingSystem):
        waiting = awaiting_billing(recovery, decision.reason, planning)
        return replace(waiting, recovery=waiting.recovery.noted(planning.now, "await_billing_system", decision.reason))
    if isinstance(decision, Observe):
        return _observing(recovery, decision, planning)
    return _ended(recovery, decision, planning, new)


def _observing(recovery: Recovery, decision: Observe, planning: Planning) -> Change:
    """Charge nothing: the shadow plans (each compared algorithm's, in the plan and in the timeline's line), and a
    re-plan at the end of the profile's monitoring period or at the horizon (the recovery ends then), whichever
    comes first."""
    now, shadow = planning.now, describe_decision(decision.shadow)
    shadows = {algorithm.value: describe_decision(d) for algorithm, d in decision.shadows.items()}
    switch_at = monitoring_switch_at(recovery.payment, planning) if decision.switch_at is not None else None
    horizon = planning.horizon_at(recovery)
    due, why = (switch_at, "monitoring period ends") if switch_at and switch_at < horizon else (horizon, "horizon")
    timer_id = replan_timer_id(recovery.payment_id, recovery.version)
    timer = Timer(timer_id, TimerKind.REPLAN, due, recovery.payment_id, TimerPurpose.REPLAN.value, now)
    observing = replace(
        recovery,
        status=RecoveryStatus.MONITORING,
        plan=MonitoringPlan(shadow, switch_at, due, timer_id, shadows),
        monitoring_switch_at=switch_at,
    )
    compared = "; ".join(shadow_summary(algorithm, d) for algorithm, d in shadows.items())
    reason = f"shadow plans: {compared}; asks again at the {why}"
    planned = shadow_planned(recovery.payment, shadows, decision.active, switch_at, now)
    return Change(
        None,
        observing.noted(now, "monitoring", reason, active=decision.active.value, shadows=shadows),
        (timer,),
        messages=(planning.message(MessageType.RECOVERY_SHADOW_PLANNED, planned, recovery.payment),),
    )


def replan_planned(recovery: Recovery, at: datetime, reason: str, planning: Planning) -> tuple[Recovery, Timer]:
    """A re-plan at `at` (business time), never after the horizon."""
    horizon = planning.horizon_at(recovery)
    due = planning.wall_time(at)
    if due > horizon:
        at, due, reason = horizon, horizon, f"{reason}; the recovery's horizon comes first: it ends then"
    timer_id = replan_timer_id(recovery.payment_id, recovery.version)
    timer = Timer(timer_id, TimerKind.REPLAN, due, recovery.payment_id, TimerPurpose.REPLAN.value, planning.now)
    planned = replace(recovery, status=RecoveryStatus.SCHEDULED, plan=ReplanPlan(at, due, timer_id, reason))
    return planned.noted(planning.now, "replan_planned", reason, planned_at=at, due_at=due), timer


def _ended(recovery: Recovery, decision: EndRecovery, planning: Planning, new: bool) -> Change:
    now = planning.now
    succeeded = decision.outcome is EndOutcome.SUCCEEDED
    ended = replace(
        recovery,
        status=RecoveryStatus.SUCCEEDED if succeeded else RecoveryStatus.FAILED,
        business_status=decision.business_status,
        plan=None,
        paused=False,
        ended_at=now,
    ).noted(now, "ended", decision.reason, outcome=decision.outcome.value)
    messages: tuple[Envelope[Any], ...] = ()
    if decision.emits_payment_failed and recovery.attempts:
        failed = payment_failed(recovery.payment, decision, recovery.attempts, now)
        messages = (planning.message(MessageType.PAYMENT_FAILED, failed, recovery.payment),)
    return Change(None, ended, cancels_planned_timers=not new, messages=messages)


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


def planner_view(recovery: Recovery, planning: Planning) -> RecoveryView:
    """The recovery as the planner sees it, with the merchant's other recoveries' reservations on its cards and the
    `never` declines they met there."""
    payment = recovery.payment
    hard = set(recovery.hard_declined_tokens)
    budgets = planning.budgets()
    since = planning.now - BUDGET_LOOKBACK
    elsewhere = {
        token: f"{declined.where}: {declined.source}"
        for token, budget in budgets.items()
        if (declined := budget.hard_declined_elsewhere(recovery.payment_id)) is not None
    }
    return RecoveryView(
        algorithm=recovery.algorithm,
        tokens=tuple(
            TokenState(
                token=t.token,
                card_network=t.card_network,
                card_issuer=t.card_issuer,
                hard_declined=t.token in hard or t.token in elsewhere,
                hard_declined_in=elsewhere.get(t.token),
                card_updated_at=recovery.card_updated_at.get(t.token),
                not_before=budgets[t.token].not_before_at(planning.now) if t.token in budgets else None,
                other_uses=budgets[t.token].uses_for(recovery, since) if t.token in budgets else (),
                prior_uses=prior_uses(t, since),
                hour_rates=_hour_rates(recovery, t.token, planning),
            )
            for t in payment.tokens
        ),
        created_at=payment.created_at,
        attempts=recovery.attempts,
        billing_retry_count=payment.billing_retry_count,
        billing_last_attempt_at=payment.transaction_created_at,
        first_codes=first_failure_codes(payment.first_error),
        monitoring_started_at=monitoring_started_at(payment),
        customer_country=payment.billing.address.country if payment.billing and payment.billing.address else None,
    )


def prior_uses(token: PaymentToken, since: datetime) -> tuple[CardUse, ...]:
    """The card's retries before this system (the merchant's backfill) since `since`, as network budgets count
    them: each an attempt on the same amount and currency, declined, at the end of its day or hour (in UTC, as
    the budgets' UTC days and the plans' times are)."""
    return tuple(
        CardUse(prior.at.astimezone(UTC), same_amount=True, declined=True)
        for prior in token.prior_retries
        if prior.at >= since
        for _ in range(prior.count)
    )


def _hour_rates(recovery: Recovery, token: str, planning: Planning) -> HourRates | None:
    """What the merchant's retries like the next one on `token` learned, by hour (None: too little evidence)."""
    if planning.learned is None or not planning.learned.by_key:
        return None
    key = attempt_key(recovery, token, len(recovery.attempts) + 1)
    return planning.learned.rates_for(key.decline_code, key.card_network, key.funding)
