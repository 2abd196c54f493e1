"""Smart's learned hours: the merchant's own retry statistics move a retry to a better hour, only on evidence,
within half the cadence's wait, the retry window and the customer's daytime; cascading never reads them."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.learned_hours import (
    MIN_KEY_ATTEMPTS,
    PRIOR_ATTEMPTS,
    HourRates,
    hour_rates,
    learned_hours,
    max_shift,
)
from recovery_scheduler.domain.model import Algorithm, ScheduleAttempt, TokenState
from recovery_scheduler.domain.planner import decide_next
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey

from .retry_builders import T0, declined, view

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
KEY = StatsKey("merchant_1", "do_not_honor", "visa", "credit")


def stats(per_hour: dict[int, tuple[int, int]], key: StatsKey = KEY) -> RetryStats:
    """A key's statistics from (attempts, successes) per UTC hour, counted the way the scheduler counts."""
    increments: Counter[str] = Counter()
    for hour, (attempts, successes) in per_hour.items():
        at = datetime(2026, 5, 4, hour, 30, tzinfo=UTC)
        for n in range(attempts):
            outcome = RetryOutcome(key, "pay", f"att_{hour}_{n}", at, succeeded=n < successes)
            increments.update(outcome.increments())
    return RetryStats.from_increments(key, increments)


def flat(rate: float) -> tuple[float, ...]:
    return (rate,) * 24


def test_a_key_with_too_few_attempts_or_no_success_teaches_nothing() -> None:
    enough = {h: (10, 2) for h in range(24)}  # 240 attempts
    assert sum(a for a, _ in enough.values()) == MIN_KEY_ATTEMPTS
    assert hour_rates(stats(enough)) is not None
    assert hour_rates(stats({**enough, 0: (9, 2)})) is None
    assert hour_rates(stats({h: (10, 0) for h in range(24)})) is None


def test_each_hour_is_pulled_towards_the_keys_rate_by_its_evidence() -> None:
    rates = hour_rates(stats({**{h: (10, 2) for h in range(23)}, 23: (10, 10)}))
    assert rates is not None
    overall = (23 * 2 + 10) / 240
    # Ten successes out of ten is not a rate of 1: 24 pseudo-attempts at the key's overall rate weigh against them.
    assert rates.rates[23] == pytest.approx((10 + PRIOR_ATTEMPTS * overall) / (10 + PRIOR_ATTEMPTS))
    assert rates.rates[23] < 0.6
    assert rates.rates[5] == pytest.approx((2 + PRIOR_ATTEMPTS * overall) / (10 + PRIOR_ATTEMPTS))
    assert rates.attempts == 240


def test_a_merchants_keys_are_kept_only_with_evidence() -> None:
    other = replace(KEY, card_network="mastercard")
    learned = learned_hours([stats({h: (10, 2) for h in range(24)}), stats({1: (5, 1)}, other)])
    assert learned.rates_for("do_not_honor", "visa", "credit") is not None
    assert learned.rates_for("do_not_honor", "mastercard", "credit") is None


def test_a_retry_moves_to_the_best_hour_within_its_shift_and_only_for_a_real_gain() -> None:
    at = datetime(2026, 5, 4, 10, 20, tzinfo=UTC)
    rates = list(flat(0.20))
    rates[12], rates[13], rates[15] = 0.26, 0.26, 0.90
    learned = HourRates(tuple(rates), 1000)
    # 15:00 is out of reach at 10:20 + 3 h; 12:00 and 13:00 tie: the earlier.
    moved = learned.better_time(at, at + 3 * H)
    assert moved is not None
    assert moved[0] == datetime(2026, 5, 4, 12, tzinfo=UTC)
    assert "12:00 UTC succeeds 26% against 20% at 10:00 (1000 attempts like it)" in moved[1]
    # A gain under 15 % (relative) is not worth the wait.
    rates[12] = rates[13] = 0.22
    assert HourRates(tuple(rates), 1000).better_time(at, at + 3 * H) is None
    # The filter (the customer's daytime) takes candidates out.
    assert learned.better_time(at, at + 3 * H, lambda c: c.hour != 12) == (
        datetime(2026, 5, 4, 13, tzinfo=UTC),
        moved[1].replace("12:00", "13:00"),
    )
    assert learned.better_time(at, at + 30 * timedelta(minutes=1)) is None


def test_the_shift_is_half_the_wait_and_a_day_at_most() -> None:
    assert max_shift(4 * H) == 2 * H
    assert max_shift(timedelta(days=5)) == timedelta(days=1)


def _smart(tokens: tuple[TokenState, ...], country: str | None = None) -> ScheduleAttempt:
    recovery = view(
        Algorithm.SMART,
        tokens,
        billing_retry_count=1,
        attempts=(declined(1, "pm_primary", T0, decline_code="do_not_honor"),),
        customer_country=country,
    )
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(5))
    assert isinstance(decision, ScheduleAttempt), decision
    return decision


def test_smart_moves_its_retry_to_the_hour_the_merchants_retries_succeed_at() -> None:
    card = TokenState("pm_primary", "Visa")
    planned = _smart((card,))
    # Generic soft declines are retried 4 h apart: the learned hour may move the retry by 2 h at most.
    best = (planned.at.replace(minute=0, second=0) + 2 * H).hour
    rates = list(flat(0.10))
    rates[best] = 0.30
    moved = _smart((replace(card, hour_rates=HourRates(tuple(rates), 600)),))
    assert moved.at.hour == best and moved.at.minute < 6  # the hour's start, plus at most 300 s of jitter
    assert planned.at < moved.at <= planned.at + 2 * H + timedelta(seconds=300)
    assert "learned hours" in moved.reason and "learned hours" not in planned.reason
    # Beyond the shift, nothing moves.
    rates[best], rates[(best + 1) % 24] = 0.10, 0.90
    assert _smart((replace(card, hour_rates=HourRates(tuple(rates), 600)),)).at == planned.at


def test_smart_keeps_a_learned_hour_inside_the_customers_daytime() -> None:
    card = TokenState("pm_primary", "Visa")
    # Bangladesh, UTC+6: the retry falls at 20:02 local, the next hours are after the daytime (08:00-21:00).
    planned = _smart((card,), country="BD")
    start = planned.at.replace(minute=0, second=0)
    rates = list(flat(0.10))
    for step in (1, 2):
        candidate = start + step * H
        local_hour = (candidate.hour + 6) % 24
        rates[candidate.hour] = 0.9 if not 8 <= local_hour < 21 else 0.10
    assert 0.9 in rates  # a far better hour within reach, at night for the customer
    kept = _smart((replace(card, hour_rates=HourRates(tuple(rates), 600)),), country="BD")
    assert kept.at == planned.at
    # Where the customer's time is unknown, the same statistics do move it.
    assert _smart((replace(card, hour_rates=HourRates(tuple(rates), 600)),)).at != _smart((card,)).at


def test_cascading_never_reads_learned_hours() -> None:
    rates = HourRates(tuple(0.9 if h % 2 else 0.01 for h in range(24)), 5000)
    recovery = view(Algorithm.CASCADING, billing_retry_count=1)
    plain = decide_next(recovery, T0, RetryConfig(), random.Random(5))
    learned = replace(recovery, tokens=(replace(recovery.tokens[0], hour_rates=rates),))
    assert decide_next(learned, T0, RetryConfig(), random.Random(5)) == plain
