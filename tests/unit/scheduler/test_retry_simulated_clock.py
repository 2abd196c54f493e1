"""Whole recoveries on a simulated clock: days of schedule in milliseconds."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import timedelta

import pytest

from recovery_scheduler.domain.budgets import CardUse
from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.customer_time import morning_spread
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    Decision,
    EndOutcome,
    EndRecovery,
    Observe,
    Recheck,
    ScheduleAttempt,
    TokenState,
)

from .retry_builders import Answer, run_recovery, view
from .retry_builders import declined as declined_at

pytestmark = pytest.mark.unit


def always(**codes: str) -> Answer:
    def answer(plan: ScheduleAttempt) -> AttemptRecord:
        return declined_at(plan.attempt_number, plan.token, plan.at, **codes)

    return answer


def succeed_on(number: int, **codes: str) -> Answer:
    def answer(plan: ScheduleAttempt) -> AttemptRecord:
        if plan.attempt_number == number:
            return AttemptRecord(plan.attempt_number, plan.token, plan.at, AttemptOutcome.SUCCEEDED)
        return declined_at(plan.attempt_number, plan.token, plan.at, **codes)

    return answer


def _plans(decisions: list[Decision]) -> list[ScheduleAttempt]:
    return [d for d in decisions if isinstance(d, ScheduleAttempt)]


def test_a_whole_cascading_ladder_runs_in_milliseconds() -> None:
    started = time.perf_counter()
    final, decisions = run_recovery(view(), always(decline_code="do_not_honor"))
    elapsed = time.perf_counter() - started
    plans = _plans(decisions)
    assert len(plans) == 15
    assert plans[-1].at - final.created_at > timedelta(days=5)
    assert [p.at for p in plans] == sorted(p.at for p in plans)
    end = decisions[-1]
    assert isinstance(end, EndRecovery) and end.outcome is EndOutcome.RETRIES_EXHAUSTED
    assert elapsed < 0.5


def test_soft_decline_then_success_on_a_later_slot() -> None:
    _, decisions = run_recovery(view(), succeed_on(3, decline_code="insufficient_funds"))
    end = decisions[-1]
    assert isinstance(end, EndRecovery) and end.outcome is EndOutcome.SUCCEEDED
    assert len(_plans(decisions)) == 3


def test_first_token_hard_declined_then_success_on_the_second() -> None:
    tokens = (TokenState("pm_a", "Visa"), TokenState("pm_b", "Visa"))

    def answer(plan: ScheduleAttempt) -> AttemptRecord:
        if plan.token == "pm_a":
            return declined_at(plan.attempt_number, plan.token, plan.at, decline_code="lost_card")
        return AttemptRecord(plan.attempt_number, plan.token, plan.at, AttemptOutcome.SUCCEEDED)

    _, decisions = run_recovery(view(tokens=tokens), answer)
    assert [p.token for p in _plans(decisions)] == ["pm_a", "pm_b"]
    end = decisions[-1]
    assert isinstance(end, EndRecovery) and end.outcome is EndOutcome.SUCCEEDED


def test_hard_decline_on_the_only_token_ends_with_payment_failed_and_no_further_charge() -> None:
    _, decisions = run_recovery(view(), always(decline_code="stolen_card"))
    assert len(_plans(decisions)) == 1
    end = decisions[-1]
    assert isinstance(end, EndRecovery)
    assert end.outcome is EndOutcome.FAILED_HARD_DECLINE and end.emits_payment_failed


@pytest.mark.parametrize("algorithm", [Algorithm.CASCADING, Algorithm.SMART])
def test_a_dense_schedule_never_exceeds_mastercards_daily_budget(algorithm: Algorithm) -> None:
    config = RetryConfig(
        ladder=(timedelta(minutes=10),) * 60, smart_max_attempts=60, smart_min_interval=timedelta(minutes=10)
    )
    # The merchant's other invoices declined on the card five times this morning: smart's technical cadence alone
    # (seven retries, backing off) would stay under the day's ten; with them the budget binds.
    others = tuple(CardUse(view().created_at - timedelta(hours=h)) for h in range(1, 6))
    card = TokenState("pm_mc", "Mastercard", other_uses=others)
    _, decisions = run_recovery(
        view(algorithm, tokens=(card,)),
        always(decline_code="processing_error"),
        config,
    )
    plans = _plans(decisions)
    assert any(isinstance(d, Recheck) for d in decisions)
    per_day = Counter(p.at.date() for p in plans)
    per_day[view().created_at.date()] += 1 + len(others)  # the billing system's failed charge, the other invoices
    assert max(per_day.values()) <= 10
    times = sorted([*(u.at for u in others), *(p.at for p in plans)])
    for i, at in enumerate(times):
        assert sum(1 for t in times[: i + 1] if at - timedelta(days=1) < t) <= 10
    assert len(plans) <= 35  # Mastercard's 30 days


def test_smart_retries_insufficient_funds_densely_for_its_first_days_then_on_paydays() -> None:
    # No billing country: no daytime to aim at, paydays at payday_hour_utc (14:00 UTC).
    recovery = view(Algorithm.SMART, first_codes=DeclineCodes(error_code="insufficient_funds"), billing_retry_count=1)
    _, decisions = run_recovery(recovery, succeed_on(14, decline_code="insufficient_funds"))
    plans = _plans(decisions)
    gaps = [plans[0].at - recovery.created_at] + [later.at - earlier.at for earlier, later in itertools.pairwise(plans)]
    expected = [timedelta(hours=4)] * 6 + [timedelta(hours=12)] * 2 + [timedelta(days=1)] * 3
    assert all(wait <= gap <= wait + timedelta(minutes=5) for wait, gap in zip(expected, gaps, strict=False))
    paydays_hit = [p for p in plans[11:] if p.reason.endswith("payday window")]
    # At 14:00 UTC plus the card's minute of the morning spread, plus the jitter (at most 5 minutes).
    slot = timedelta(hours=14) + morning_spread("pm_primary", RetryConfig().smart_morning_spread)
    assert paydays_hit and all(
        p.at.day in (1, 15, 29)
        and slot < p.at - p.at.replace(hour=0, minute=0, second=0) <= slot + timedelta(minutes=5)
        for p in paydays_hit
    )
    end = decisions[-1]
    assert isinstance(end, EndRecovery) and end.outcome is EndOutcome.SUCCEEDED


def test_monitoring_charges_nothing() -> None:
    _, decisions = run_recovery(view(Algorithm.MONITORING), always())
    assert len(decisions) == 1 and isinstance(decisions[0], Observe)
