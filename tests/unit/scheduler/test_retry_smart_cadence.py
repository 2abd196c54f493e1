"""Smart's rules per kind of decline: cadences, caps per kind, the customer's daytime and payday mornings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.customer_time import in_daytime, morning_spread, utc_offset
from recovery_scheduler.domain.declines import DeclineCodes
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
from recovery_scheduler.domain.smart_cadence import GENERIC, INSUFFICIENT_FUNDS, SPECIFIC_SOFT, TECHNICAL, Cadence

from .retry_builders import T0, declined, view

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)
H = timedelta(hours=1)
JITTER = timedelta(seconds=300)
# The primary card's minute of the morning spread: where its retries aimed at a morning go.
SPREAD = morning_spread("pm_primary", RetryConfig().smart_morning_spread)
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
    [
        (TECHNICAL, 1, H),
        (TECHNICAL, 3, 4 * H),
        (TECHNICAL, 30, 4 * DAY),
        (GENERIC, 1, 4 * H),
        (GENERIC, 7, 12 * H),
        (GENERIC, 9, DAY),
        (GENERIC, 12, 3 * DAY),
        (GENERIC, 20, 5 * DAY),
        (INSUFFICIENT_FUNDS, 6, 4 * H),
        (INSUFFICIENT_FUNDS, 11, DAY),
        (SPECIFIC_SOFT, 1, DAY),
        (SPECIFIC_SOFT, 9, 2 * DAY),
    ],
)
def test_a_cadence_backs_off_and_its_last_wait_repeats(cadence: Cadence, declines: int, wait: timedelta) -> None:
    assert cadence.wait_after(declines) == wait


def test_technical_declines_back_off_from_an_hour() -> None:
    times = [T0, T0 + H, T0 + 3 * H]
    decision = _decide(view(Algorithm.SMART, attempts=_declines("processing_error", times)))
    assert isinstance(decision, ScheduleAttempt)
    assert T0 + 3 * H + 4 * H <= decision.at <= T0 + 7 * H + JITTER
    assert "technical cadence" in decision.reason


def test_generic_soft_declines_are_retried_densely_in_the_first_days_then_sparsely() -> None:
    # No billing country: no daytime to aim at. Three declines: the fourth step is still 4 hours.
    early = [T0 + n * 4 * H for n in range(3)]
    first = _decide(view(Algorithm.SMART, attempts=_declines("do_not_honor", early)))
    assert isinstance(first, ScheduleAttempt)
    assert early[-1] + 4 * H <= first.at <= early[-1] + 4 * H + JITTER
    # Twelve declines: past the first days (six 4-hour steps, two of 12 hours, three days), the tail's 3 days.
    twelve = [T0 + n * DAY for n in range(12)]
    later = _decide(view(Algorithm.SMART, attempts=_declines("do_not_honor", twelve)))
    assert isinstance(later, ScheduleAttempt)
    assert twelve[-1] + 3 * DAY <= later.at <= twelve[-1] + 3 * DAY + JITTER


def test_soft_declines_with_a_specific_cause_are_retried_a_day_apart_for_a_week_then_spread_out() -> None:
    # A velocity limit (61/65: retry after >= 24 h) keeps its rule's day, whatever the generic cadence does.
    week = [T0 + n * DAY for n in range(8)]
    first = _decide(view(Algorithm.SMART, attempts=_declines("card_velocity_exceeded", week[:1])))
    assert isinstance(first, ScheduleAttempt)
    assert week[0] + DAY <= first.at <= week[0] + DAY + JITTER
    assert "specific soft cadence" in first.reason
    later = _decide(view(Algorithm.SMART, attempts=_declines("card_velocity_exceeded", week)))
    assert isinstance(later, ScheduleAttempt)
    assert week[-1] + 2 * DAY <= later.at <= week[-1] + 2 * DAY + JITTER


def test_a_network_advice_wait_stays_a_floor_under_the_dense_first_days() -> None:
    # Mastercard MAC 26 (retry after 2 days) on a do-not-honor decline: the cadence's 4 hours do not apply.
    attempts = (declined(1, "pm_primary", T0, decline_code="do_not_honor", network_advice_code="26"),)
    decision = _decide(view(Algorithm.SMART, tokens=(TokenState("pm_primary", "Mastercard"),), attempts=attempts))
    assert isinstance(decision, ScheduleAttempt)
    assert T0 + 2 * DAY <= decision.at <= T0 + 2 * DAY + JITTER


def test_a_soft_decline_waits_for_the_customers_daytime() -> None:
    # Declined at 14:00 UTC, midnight in Sydney: 4 hours later is 04:00 there, so the retry moves to 08:00, at the
    # card's minute of the morning spread.
    at = datetime(2026, 5, 4, 14, tzinfo=UTC)
    recovery = view(Algorithm.SMART, customer_country="AU", attempts=_declines("do_not_honor", [at]))
    decision = _decide(recovery)
    assert isinstance(decision, ScheduleAttempt)
    morning = at + 8 * H + SPREAD
    assert morning <= decision.at <= morning + JITTER
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
        first_codes=DeclineCodes(error_code="insufficient_funds"),
        billing_retry_count=1,
        attempts=_declines("insufficient_funds", times),
    )


def _first_days(start: datetime) -> list[datetime]:
    """Eleven retries through the dense first days, the last at `start` + 8 days."""
    return [start + DAY * 8 * n / 11 for n in range(1, 12)]


def test_insufficient_funds_after_its_first_days_aims_at_the_customers_payday_morning() -> None:
    # Twelve declines (the billing system's and eleven of ours) ending on 12 May: the next is the 15th, 09:00 in
    # New York (14:00 UTC), at the card's minute of the payday spread.
    times = _first_days(T0)
    decision = _decide(_insufficient_funds_in_new_york(times))
    assert isinstance(decision, ScheduleAttempt)
    slot = datetime(2026, 5, 15, 14, tzinfo=UTC) + SPREAD
    assert slot <= decision.at <= slot + JITTER
    assert "payday morning" in decision.reason


def test_insufficient_funds_keeps_a_day_from_its_last_retry_before_a_payday_morning() -> None:
    # The last decline at 05:00 in New York on Friday the 15th, a payday: its 09:00 is too close, and the next
    # payday (the 29th) two weeks off, so a retry a week on, at 08:00 there on the 22nd.
    times = [*_first_days(T0)[:-1], datetime(2026, 5, 15, 10, tzinfo=UTC)]
    decision = _decide(_insufficient_funds_in_new_york(times))
    assert isinstance(decision, ScheduleAttempt)
    slot = datetime(2026, 5, 22, 13, tzinfo=UTC) + SPREAD
    assert slot <= decision.at <= slot + JITTER


def test_insufficient_funds_between_paydays_far_apart_is_retried_a_week_on() -> None:
    # The last decline on the 15th: the next payday (29th) is two weeks off, so a retry a week on, on the 22nd.
    times = [*_first_days(T0)[:-1], datetime(2026, 5, 15, 14, tzinfo=UTC)]
    decision = _decide(_insufficient_funds_in_new_york(times))
    assert isinstance(decision, ScheduleAttempt)
    assert times[-1] + 7 * DAY <= decision.at <= times[-1] + 7 * DAY + JITTER
    assert "7 d on" in decision.reason


@pytest.mark.parametrize(
    ("code", "cadence"),
    [
        ("processing_error", TECHNICAL),
        ("do_not_honor", GENERIC),
        ("card_velocity_exceeded", SPECIFIC_SOFT),
        ("insufficient_funds", INSUFFICIENT_FUNDS),
    ],
)
def test_a_kind_of_decline_has_its_own_cap(code: str, cadence: Cadence) -> None:
    # The billing system's decline and `max_retries` retries of ours after it: the kind is spent.
    retries = cadence.max_retries
    times = [T0 + n * DAY for n in range(1, retries + 1)]
    recovery = view(
        Algorithm.SMART,
        first_codes=DeclineCodes(error_code=code),
        billing_retry_count=1,
        attempts=_declines(code, times),
    )
    decision = _decide(recovery)
    assert isinstance(decision, EndRecovery) and decision.outcome is EndOutcome.RETRIES_EXHAUSTED
    assert f"used its {retries}" in decision.reason
    fewer = view(
        Algorithm.SMART,
        first_codes=DeclineCodes(error_code=code),
        billing_retry_count=1,
        attempts=_declines(code, times[:-1]),
    )
    assert isinstance(_decide(fewer), ScheduleAttempt)


def test_a_hard_decline_after_soft_ones_ends_the_recovery_whatever_the_cadence() -> None:
    attempts = (
        *_declines("do_not_honor", [T0, T0 + DAY]),
        declined(3, "pm_primary", T0 + 2 * DAY, decline_code="lost_card"),
    )
    decision = _decide(view(Algorithm.SMART, attempts=attempts))
    assert isinstance(decision, EndRecovery) and decision.outcome is EndOutcome.FAILED_HARD_DECLINE


def test_a_card_whose_kind_of_decline_is_spent_hands_over_to_the_customers_other_card() -> None:
    # The primary card used its retries of a specific soft decline (velocity); no switch threshold is configured.
    # The customer's other card is tried instead of ending the recovery with a card that may be charged untried.
    retries = SPECIFIC_SOFT.max_retries
    times = [T0 + n * DAY for n in range(1, retries + 1)]
    recovery = view(
        Algorithm.SMART,
        tokens=(CARD, TokenState("pm_backup", "Mastercard")),
        first_codes=DeclineCodes(error_code="card_velocity_exceeded"),
        billing_retry_count=1,
        attempts=_declines("card_velocity_exceeded", times),
    )
    decision = _decide(recovery)
    assert isinstance(decision, ScheduleAttempt) and decision.token == "pm_backup", decision
    assert "switched from token pm_primary" in decision.reason
