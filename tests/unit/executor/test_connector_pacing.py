"""The pace of one connector account (domain/pacing.py): the turns a reservation gets, the burst, the spacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_executor.adapters.pacing import budget_key
from recovery_executor.domain.pacing import Pace

NOW = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def test_the_interval_is_whole_milliseconds_and_the_burst_runs_ahead_by_its_turns() -> None:
    assert Pace(25.0, 10).interval == timedelta(milliseconds=40)
    assert Pace(3.0, 1).interval == timedelta(milliseconds=333)
    assert Pace(5000.0, 1).interval == timedelta(milliseconds=1)  # never 0: every turn moves the time on
    assert Pace(25.0, 10).tolerance == timedelta(milliseconds=360)
    assert Pace(25.0, 1).tolerance == timedelta(0)


@pytest.mark.parametrize(("per_second", "burst"), [(0.0, 1), (-1.0, 5), (10.0, 0)])
def test_a_pace_that_could_never_let_a_request_through_is_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_second > 0 and burst >= 1"):
        Pace(per_second, burst)


def test_after_a_quiet_spell_the_burst_goes_now_and_the_rest_one_interval_apart() -> None:
    pace = Pace(10.0, 3)  # 100 ms apart, three at once
    # A quiet account: its tat was in the past, so the reservation of 5 started from now.
    waits = pace.waits(NOW + pace.interval * 5, 5, NOW)
    assert waits == [0.0, 0.0, 0.0, 0.1, 0.2]


def test_a_reservation_behind_others_waits_for_the_turns_after_theirs() -> None:
    pace = Pace(10.0, 3)
    # Eight turns were reserved just before (tat at now + 800 ms); these two are the ninth and tenth.
    waits = pace.waits(NOW + timedelta(milliseconds=1000), 2, NOW)
    assert waits == pytest.approx([0.6, 0.7])


def test_one_budget_per_secret_key_never_the_key_itself() -> None:
    key = "sk_live_51Habc"
    assert budget_key("stripe", key) == budget_key("stripe", key)
    assert budget_key("stripe", key) != budget_key("stripe", key + "d")
    assert key not in budget_key("stripe", key) and budget_key("stripe", key).startswith("stripe:")


def test_a_hold_puts_the_next_turn_that_far_off_whatever_the_burst() -> None:
    pace = Pace(10.0, 3)
    held = pace.held_tat(NOW, 1.0)
    # A reservation on the held tat: its turn is a second away, not within the burst.
    assert pace.waits(held + pace.interval, 1, NOW) == [1.0]
