"""Network budgets: data with source and edition; the earliest time each allows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.budgets import (
    DEFAULT_NETWORK_BUDGETS,
    UNKNOWN_NETWORK_BUDGET,
    CardUse,
    NetworkBudget,
    budget_for,
)
from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import Algorithm, Decision, Recheck, RecoveryView, ScheduleAttempt, TokenState
from recovery_scheduler.domain.networks import CardNetwork, normalize_card_network
from recovery_scheduler.domain.planner import decide_next

pytestmark = pytest.mark.unit

NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_every_limit_carries_its_source_and_rule_edition() -> None:
    for budget in (*DEFAULT_NETWORK_BUDGETS, UNKNOWN_NETWORK_BUDGET):
        for limit in budget.limits:
            assert limit.source and limit.rule_edition


@pytest.mark.parametrize(
    ("network", "per_day", "per_30_days"),
    [
        ("Visa", 20, 20),
        ("Mastercard", 10, 35),
        ("American Express", 20, 20),
        ("Discover", 20, 20),
        (None, 10, 20),
    ],
)
def test_default_budgets(network: str | None, per_day: int, per_30_days: int) -> None:
    budget = budget_for(network)
    day = [lim.max_attempts for lim in budget.limits if lim.window == timedelta(days=1)]
    month = [lim.max_attempts for lim in budget.limits if lim.window == timedelta(days=30)]
    assert min(day) == per_day
    assert month == [per_30_days]


def test_visa_edition_is_recorded() -> None:
    assert any("18 Apr 2026" in lim.rule_edition for lim in budget_for("visa").limits)


@pytest.mark.parametrize(
    ("name", "network"),
    [
        ("VISA", CardNetwork.VISA),
        ("MasterCard", CardNetwork.MASTERCARD),
        ("AmericanExpress", CardNetwork.AMEX),
        ("amex", CardNetwork.AMEX),
        ("Discover", CardNetwork.DISCOVER),
        ("JCB", None),
        (None, None),
    ],
)
def test_network_names_are_normalized(name: str | None, network: CardNetwork | None) -> None:
    assert normalize_card_network(name) is network


def test_a_used_daily_budget_waits_until_the_next_utc_midnight() -> None:
    daily = NetworkBudget(None, tuple(lim for lim in budget_for("amex").limits if lim.utc_day))
    used = [NOON.replace(hour=0) + timedelta(minutes=m) for m in range(20)]
    assert daily.earliest_allowed(used, NOON) == datetime(2026, 5, 5, tzinfo=UTC)
    assert daily.allows(used[:19], NOON)
    # Amex's 20 per 30 days is used up by the same 20: that wait is longer.
    assert budget_for("amex").earliest_allowed(used, NOON) == used[0] + timedelta(days=30)


def test_the_rolling_30_days_release_when_the_oldest_attempt_leaves_the_window() -> None:
    visa = budget_for("visa")
    used = [NOON - timedelta(days=29) + timedelta(days=i) for i in range(20)]  # one a day
    assert visa.earliest_allowed(used, NOON) == used[0] + timedelta(days=30)


def test_mastercard_counts_a_rolling_24_hours_as_well_as_the_utc_day() -> None:
    mc = budget_for("mastercard")
    late = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    used = [late + timedelta(minutes=i) for i in range(10)]
    # After midnight the UTC day is fresh but the 24 hours are not.
    assert mc.earliest_allowed(used, datetime(2026, 5, 5, 1, tzinfo=UTC)) == used[0] + timedelta(days=1)


def test_smart_checks_the_budget_again_after_its_jitter() -> None:
    """Smart's slot passes the budget, then its jitter moves it on by up to minutes: far enough that other invoices'
    attempts just past a day from the slot fall inside the rolling 24 hours. The jittered time is checked again."""
    now = datetime(2026, 5, 4, 10, tzinfo=UTC)
    jitter = RetryConfig(min_jitter=timedelta(minutes=5), max_jitter=timedelta(minutes=5))

    def decide(others: tuple[CardUse, ...]) -> Decision:
        card = TokenState("pm_mc", "Mastercard", other_uses=others)
        first = DeclineCodes(error_code="processing_error")
        recovery = RecoveryView(Algorithm.SMART, (card,), now - timedelta(hours=4), first_codes=first)
        return decide_next(recovery, now, jitter, random.Random(1))

    free = decide(())
    assert isinstance(free, ScheduleAttempt)
    slot = free.at - timedelta(minutes=5)
    others = tuple(CardUse(slot + timedelta(hours=24, seconds=150)) for _ in range(10))  # a day and 2.5 min on

    held = decide(others)

    assert isinstance(held, Recheck), held
    assert budget_for("mastercard").allows([u.at for u in others], held.at)
