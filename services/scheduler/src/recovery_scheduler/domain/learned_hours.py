"""Smart's learned hours: when the merchant's own retries like the next one (the same leading decline, card network
and funding: a key of the retry statistics, domain/retry_stats.py) have succeeded, by hour of day in UTC, so that
smart can move a retry to a better hour within a bounded shift. Pure: the statistics are read by the adapter.

Evidence, not noise: a key is used only with `MIN_KEY_ATTEMPTS` attempts counted; each hour's rate is pulled towards
the key's overall rate by `PRIOR_ATTEMPTS` pseudo-attempts (an hour tried a few times says little); a retry moves
only to an hour whose rate beats the planned hour's by `MIN_GAIN` (relative), and never by more than half the
cadence's wait (`max_shift`), so the spacing between retries, and the retry window, hold."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .retry_stats import Bucketing, RetryStats

MIN_KEY_ATTEMPTS = 240  # ten attempts an hour on average
PRIOR_ATTEMPTS = 24
MIN_GAIN = 0.15
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class HourRates:
    """One key's smoothed success rate for each UTC hour of day (index 0-23), with the attempts behind it."""

    rates: tuple[float, ...]
    attempts: int

    def rate_at(self, at: datetime) -> float:
        return self.rates[at.astimezone(UTC).hour]

    def better_time(
        self, at: datetime, latest: datetime, allowed: Callable[[datetime], bool] = lambda _: True
    ) -> tuple[datetime, str] | None:
        """The start of the hour, after `at` and at the latest `latest`, whose rate is the best and beats `at`'s
        hour by `MIN_GAIN` (the earliest of equals), with why; None: `at` stays. `allowed` filters the candidates
        (the customer's daytime)."""
        planned = self.rate_at(at)
        start = at.replace(minute=0, second=0, microsecond=0)
        candidates = []
        candidate = start + HOUR
        while candidate <= latest:
            if allowed(candidate):
                candidates.append(candidate)
            candidate += HOUR
        if not candidates:
            return None
        best = max(candidates, key=lambda c: (self.rate_at(c), -c.timestamp()))
        if self.rate_at(best) < planned * (1 + MIN_GAIN):
            return None
        why = (
            f"learned hours: {best.astimezone(UTC).hour:02d}:00 UTC succeeds {self.rate_at(best):.0%} against "
            f"{planned:.0%} at {at.astimezone(UTC).hour:02d}:00 ({self.attempts} attempts like it)"
        )
        return best, why


def hour_rates(stats: RetryStats) -> HourRates | None:
    """A key's hour rates, or None while it has fewer than `MIN_KEY_ATTEMPTS` attempts (or no success at all)."""
    total = stats.total
    if total.attempts < MIN_KEY_ATTEMPTS or total.successes == 0:
        return None
    overall = total.successes / total.attempts
    rates = []
    for hour in Bucketing.HOUR_OF_DAY.buckets:
        counts = stats.bucket(Bucketing.HOUR_OF_DAY, hour)
        rates.append((counts.successes + PRIOR_ATTEMPTS * overall) / (counts.attempts + PRIOR_ATTEMPTS))
    return HourRates(tuple(rates), total.attempts)


@dataclass(frozen=True)
class LearnedHours:
    """A merchant's hour rates per (decline code, card network, funding), for the keys with enough evidence."""

    by_key: Mapping[tuple[str, str, str], HourRates]

    def rates_for(self, decline_code: str, card_network: str, funding: str) -> HourRates | None:
        return self.by_key.get((decline_code, card_network, funding))


def learned_hours(stats: Iterable[RetryStats]) -> LearnedHours:
    """From a merchant's statistics (one RetryStats per key, as `retry_stats.merged` gives them)."""
    found = {}
    for part in stats:
        rates = hour_rates(part)
        if rates is not None:
            found[(part.key.decline_code, part.key.card_network, part.key.funding)] = rates
    return LearnedHours(found)


def max_shift(wait: timedelta) -> timedelta:
    """How far a learned hour may move a retry planned `wait` after the last decline: half of it, a day at most."""
    return min(wait / 2, timedelta(days=1))
