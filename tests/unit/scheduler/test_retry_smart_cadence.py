"""Smart's rules per kind of decline: cadences, caps per kind, the customer's daytime and payday mornings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.customer_time import in_daytime, utc_offset
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptRecord,
    EndOutcome,
    EndRecovery,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next
from recovery_scheduler.domain.smart_cadence import GENERIC, TECHNICAL, Cadence

from .retry_builders import T0, declined, view

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)
H = timedelta(hours=1)
JITTER = timedelta(seconds=300)
CARD = TokenState("pm_primary", "Visa")


def _decide(recovery: RecoveryView, now: datetime | None = None) -> ScheduleAttempt | EndRecovery:
    last = recovery.attempts[-1].at if recovery.attempts else recovery.created_at
    decision = decide_next(recovery, now or last, RetryConfig(), random.Random(5))
    assert isinstance(decision, ScheduleAttempt | EndRecovery), decision
    return decision


def _declines(code: str, times: list[datetime]) -> tuple[AttemptRecord, ...]:
    return tuple(declined(n, "pm_primary", at, decline_code=code) for n, at in enumerate(times, start=1))


def test_a_country_gives_the_customers_offset_and_an_unknown_one_none() -> None:
    assert utc_offset("AU") == timedelta(hours=10)
    assert utc_offset("in") == timedelta(hours=5, minutes=30)
    assert utc_offset("ZZ") is None
    assert utc_offset(None) is None


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 5, 4, 3, tzinfo=UTC), datetime(2026, 5, 4, 3, tzinfo=UTC)),  # 13:00 in Sydney: kept
        (datetime(2026, 5, 4, 14, tzinfo=UTC), datetime(2026, 5, 4, 22, tzinfo=UTC)),  # midnight: next 08:00
        (datetime(2026, 5, 4, 21, tzinfo=UTC), datetime(2026, 5, 4, 22, tzinfo=UTC)),  # 07:00: the same morning
    ],
)
def test_in_daytime_moves_a_night_time_to_the_customers_next_morning(at: datetime, expected: datetime) -> None:
    assert in_daytime(at, timedelta(hours=10), 8, 21) == expected


@pytest.mark.parametrize(
    ("cadence", "declines", "wait"),
    [(TECHNICAL, 1, H), (TECHNICAL, 3, 4 * H), (TECHNICAL, 30, 4 * DAY), (GENERIC, 1, DAY), (GENERIC, 9, 2 * DAY)],
)
def test_a_cadence_backs_off_and_its_last_wait_repeats(cadence: Cadence, declines: int, wait: timedelta) -> None:
    assert cadence.wait_after(declines) == wait


def test_technical_declines_back_off_from_an_hour() -> None:
    times = [T0, T0 + H, T0 + 3 * H]
    decision = _decide(view(Algorithm.SMART, attempts=_declines("processing_error", times)))
    assert isinstance(decision, ScheduleAttempt)
    assert T0 + 3 * H + 4 * H <= decision.at <= T0 + 7 * H + JITTER
    assert "technical cadence" in decision.reason


def test_soft_declines_are_retried_a_day_apart_for_a_week_then_spread_out() -> None:
    week = [T0 + n * DAY for n in range(8)]
    assert isinstance(
        first := _decide(view(Algorithm.SMART, attempts=_declines("do_not_honor", week[:3]))), ScheduleAttempt
    )
    assert week[2] + DAY <= first.at <= week[2] + DAY + JITTER
    later = _decide(view(Algorithm.SMART, attempts=_declines("do_not_honor", week)))
    assert isinstance(later, ScheduleAttempt)
    assert week[-1] + 2 * DAY <= later.at <= week[-1] + 2 * DAY + JITTER


def test_a_soft_decline_waits_for_the_customers_daytime() -> None:
    # Declined at 14:00 UTC, midnight in Sydney: a day later is midnight again, so the retry moves to 08:00 there.
    at = datetime(2026, 5, 4, 14, tzinfo=UTC)
    recovery = view(Algorithm.SMART, customer_country="AU", attempts=_declines("do_not_honor", [at]))
    decision = _decide(recovery)
    assert isinstance(decision, ScheduleAttempt)
    assert at + DAY + 8 * H <= decision.at <= at + DAY + 8 * H + JITTER
    assert "daytime" in decision.reason


def test_technical_declines_are_not_held_for_the_daytime() -> None:
    at = datetime(2026, 5, 4, 14, tzinfo=UTC)
    recovery = view(Algorithm.SMART, customer_country="AU", attempts=_declines("processing_error", [at]))
    decision = _decide(recovery)
    assert isinstance(decision, ScheduleAttempt) and decision.at <= at + H + JITTER


def _insufficient_funds_in_new_york(times: list[datetime]) -> RecoveryView:
    return view(
        Algorithm.SMART,
        customer_country="US",
        first_error_code="insufficient_funds",
        billing_retry_count=1,
        attempts=_declines("insufficient_funds", times),
    )


def test_insufficient_funds_after_its_week_aims_at_the_customers_payday_morning() -> None:
    # Eight declines (the billing system's and seven of ours, a day apart) ending on 12 May: the next is the 15th,
    # 09:00 in New York (14:00 UTC).
    times = [T0 + n * DAY for n in range(2, 9)]
    decision = _decide(_insufficient_funds_in_new_york(times))
    assert isinstance(decision, ScheduleAttempt)
    slot = datetime(2026, 5, 15, 14, tzinfo=UTC)
    assert slot <= decision.at <= slot + JITTER
    assert "payday morning" in decision.reason


def test_insufficient_funds_between_paydays_far_apart_is_retried_every_four_days() -> None:
    # The last decline on the 15th: the next payday (29th) is two weeks off, so a retry four days on, on the 19th.
    times = [T0 + n * DAY for n in range(1, 8)] + [datetime(2026, 5, 15, 14, tzinfo=UTC)]
    decision = _decide(_insufficient_funds_in_new_york(times))
    assert isinstance(decision, ScheduleAttempt)
    assert times[-1] + 4 * DAY <= decision.at <= times[-1] + 4 * DAY + JITTER
    assert "4 d on" in decision.reason


@pytest.mark.parametrize(("code", "cadence"), [("processing_error", TECHNICAL), ("do_not_honor", GENERIC)])
def test_a_kind_of_decline_has_its_own_cap(code: str, cadence: Cadence) -> None:
    # The billing system's decline and `max_retries` retries of ours after it: the kind is spent.
    retries = cadence.max_retries
    times = [T0 + n * DAY for n in range(1, retries + 1)]
    recovery = view(Algorithm.SMART, first_error_code=code, billing_retry_count=1, attempts=_declines(code, times))
    decision = _decide(recovery)
    assert isinstance(decision, EndRecovery) and decision.outcome is EndOutcome.RETRIES_EXHAUSTED
    assert f"used its {retries}" in decision.reason
    fewer = view(Algorithm.SMART, first_error_code=code, billing_retry_count=1, attempts=_declines(code, times[:-1]))
    assert isinstance(_decide(fewer), ScheduleAttempt)


def test_a_hard_decline_after_soft_ones_ends_the_recovery_whatever_the_cadence() -> None:
    attempts = (
        *_declines("do_not_honor", [T0, T0 + DAY]),
        declined(3, "pm_primary", T0 + 2 * DAY, decline_code="lost_card"),
    )
    decision = _decide(view(Algorithm.SMART, attempts=attempts))
    assert isinstance(decision, EndRecovery) and decision.outcome is EndOutcome.FAILED_HARD_DECLINE
