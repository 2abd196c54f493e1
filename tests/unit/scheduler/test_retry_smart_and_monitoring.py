"""Smart (decline-aware, payday windows, token scoring, switch config) and monitoring (a shadow plan only)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.customer_time import morning_spread, next_payday_slot, paydays
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    EndRecovery,
    Observe,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next

from .retry_builders import T0, declined, view

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
JITTER = (timedelta(seconds=1), timedelta(seconds=300))
PRIMARY = TokenState("pm_primary", "Visa")
SECOND = TokenState("pm_second", "Mastercard")


def _smart(config: RetryConfig | None = None, **fields: object) -> ScheduleAttempt:
    decision = decide_next(
        view(Algorithm.SMART, **fields), fields.get("now", T0), config or RetryConfig(), random.Random(3)
    )  # type: ignore[arg-type]
    assert isinstance(decision, ScheduleAttempt), decision
    return decision


def _within_jitter(at: datetime, slot: datetime) -> bool:
    return slot + JITTER[0] <= at <= slot + JITTER[1]


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 5, (date(2026, 5, 1), date(2026, 5, 15), date(2026, 5, 29))),  # 31 May is a Sunday
        (2026, 8, (date(2026, 8, 3), date(2026, 8, 17), date(2026, 8, 31))),  # 1st and 15th on a Saturday
    ],
)
def test_paydays_are_the_1st_the_15th_and_the_last_business_day(
    year: int, month: int, expected: tuple[date, ...]
) -> None:
    assert paydays(year, month) == expected


def test_next_payday_slot_is_at_the_good_hour() -> None:
    assert next_payday_slot(datetime(2026, 5, 15, 15, tzinfo=UTC), 14) == datetime(2026, 5, 29, 14, tzinfo=UTC)
    assert next_payday_slot(datetime(2026, 5, 30, tzinfo=UTC), 14) == datetime(2026, 6, 1, 14, tzinfo=UTC)


def test_insufficient_funds_aims_at_the_next_payday_at_a_good_hour_after_its_first_days() -> None:
    # The billing system's decline and eleven of ours (the dense first days' steps), the last on 12 May.
    daily = tuple(
        declined(n, "pm_primary", T0 + timedelta(days=8) * n / 11, decline_code="insufficient_funds")
        for n in range(1, 12)
    )
    decision = _smart(
        tokens=(PRIMARY,),
        first_codes=DeclineCodes(error_code="insufficient_funds"),
        billing_retry_count=1,
        attempts=daily,
    )
    spread = morning_spread("pm_primary", RetryConfig().smart_morning_spread)
    assert _within_jitter(decision.at, datetime(2026, 5, 15, 14, tzinfo=UTC) + spread)
    assert "payday" in decision.reason


def test_morning_retries_are_spread_over_the_morning_each_card_at_its_own_minute() -> None:
    spread = RetryConfig().smart_morning_spread
    minutes = [morning_spread(f"pm_{n:05d}", spread) for n in range(3000)]
    # Every card within the spread, on a whole minute, the same minute on every plan.
    assert all(timedelta(0) <= m < spread and m.seconds % 60 == 0 for m in minutes)
    assert morning_spread("pm_00042", spread) == minutes[42]
    # Spread evenly: each sixth of the spread gets a sixth of the cards, give or take a fifth.
    per_sixth = [sum(1 for m in minutes if m // (spread / 6) == sixth) for sixth in range(6)]
    assert all(400 <= count <= 600 for count in per_sixth), per_sixth
    assert morning_spread("pm_any", timedelta(0)) == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"smart_morning_spread": timedelta(minutes=-1)}, "must not be negative"),
        ({"smart_morning_spread": timedelta(hours=13)}, "past the daytime's end"),  # 09:00 + 13 h > 21:00
        ({"payday_hour_utc": 22, "smart_morning_spread": timedelta(hours=3)}, "within the payday"),
    ],
)
def test_a_morning_spread_that_leaves_the_day_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("codes", "earliest"),
    [
        ({"decline_code": "processing_error"}, H),
        ({"decline_code": "do_not_honor"}, 4 * H),
        ({"decline_code": "card_velocity_exceeded"}, timedelta(days=1)),
        ({"decline_code": "restricted_card"}, timedelta(days=3)),
        ({"decline_code": "do_not_honor", "network_advice_code": "29"}, timedelta(days=8)),
    ],
)
def test_the_decline_class_decides_when(codes: dict[str, str], earliest: timedelta) -> None:
    token = TokenState("pm_primary", "Mastercard")
    decision = _smart(tokens=(token,), attempts=(declined(1, "pm_primary", T0, **codes),))
    assert _within_jitter(decision.at, T0 + earliest)


def test_a_connector_error_is_retried_soon() -> None:
    attempts = (AttemptRecord(1, "pm_primary", T0, AttemptOutcome.ERROR, DeclineCodes(error_code="api_error")),)
    assert _within_jitter(_smart(attempts=attempts).at, T0 + H)


def test_without_switch_config_smart_stays_on_the_current_token() -> None:
    decision = _smart(
        tokens=(PRIMARY, SECOND), first_codes=DeclineCodes(error_code="insufficient_funds"), billing_retry_count=1
    )
    assert decision.token == "pm_primary"


def test_switch_retry_threshold_opens_the_other_tokens_and_the_earliest_slot_wins() -> None:
    config = RetryConfig(switch_retry_threshold=1)
    decision = _smart(
        config,
        tokens=(PRIMARY, SECOND),
        first_codes=DeclineCodes(error_code="insufficient_funds"),
        billing_retry_count=1,
    )
    assert decision.token == "pm_second"
    assert _within_jitter(decision.at, T0)
    assert "switched" in decision.reason


def test_switch_time_threshold_opens_the_other_tokens_after_creation() -> None:
    config = RetryConfig(switch_time_threshold_after_creation=timedelta(days=2))
    # restricted_card: three days on the primary, so the other token's opening after two days comes first.
    decision = _smart(
        config, tokens=(PRIMARY, SECOND), first_codes=DeclineCodes(error_code="restricted_card"), billing_retry_count=1
    )
    assert decision.token == "pm_second"
    assert _within_jitter(decision.at, T0 + timedelta(days=2))


def test_a_hard_declined_current_token_switches_at_once() -> None:
    decision = _smart(
        tokens=(PRIMARY, SECOND), first_codes=DeclineCodes(error_code="stolen_card"), billing_retry_count=1
    )
    assert decision.token == "pm_second"


def test_smart_stops_after_its_attempts() -> None:
    config = RetryConfig(smart_max_attempts=2)
    attempts = (declined(1, "pm_primary", T0), declined(2, "pm_primary", T0 + timedelta(days=1)))
    decision = decide_next(view(Algorithm.SMART, attempts=attempts), T0 + timedelta(days=1), config, random.Random(1))
    assert isinstance(decision, EndRecovery)


def test_monitoring_observes_the_active_algorithms_plan_and_when_to_switch() -> None:
    config = RetryConfig(monitoring_threshold=timedelta(days=3))
    decision = decide_next(view(Algorithm.MONITORING), T0, config, random.Random(1))
    assert isinstance(decision, Observe)
    assert isinstance(decision.shadow, ScheduleAttempt)
    assert "cascading" in decision.shadow.reason
    assert decision.switch_at == T0 + timedelta(days=3)


def test_monitoring_can_shadow_smart() -> None:
    config = RetryConfig(active_algorithm=Algorithm.SMART)
    decision = decide_next(
        view(Algorithm.MONITORING, first_codes=DeclineCodes(error_code="insufficient_funds")),
        T0,
        config,
        random.Random(1),
    )
    assert isinstance(decision, Observe)
    assert isinstance(decision.shadow, ScheduleAttempt)
    assert decision.shadow.reason.startswith("smart")
    assert decision.switch_at is None


def test_smart_retries_a_card_the_account_updater_refreshed_after_an_expired_decline() -> None:
    """An expired-card decline carries no wait; once the card is updated the token is usable again, and smart
    plans it (it used to fail an assertion: the simulator found it on 6% of payments)."""
    attempts = (declined(1, "pm_visa", T0, decline_code="expired_card"),)
    tokens = (TokenState("pm_visa", "Visa", card_updated_at=T0 + timedelta(hours=1)), TokenState("pm_mc", "Mastercard"))
    recovery = view(Algorithm.SMART, tokens=tokens, attempts=attempts)
    decision = decide_next(recovery, T0 + timedelta(hours=1), RetryConfig(), random.Random(3))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.at >= T0 + timedelta(hours=1)
