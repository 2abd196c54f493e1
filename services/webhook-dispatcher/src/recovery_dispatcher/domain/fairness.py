"""How deliveries share the dispatcher: which endpoints count as slow (they take from the slow endpoints' share,
not from the in-flight bound the prompt ones share), whether a delivery that finds its endpoint busy waits for a
slot or is parked, an endpoint's rate limit (a token bucket), and when a parked delivery comes back (on a timer,
the parked deliveries of one endpoint spaced out so that they come back about as fast as the endpoint takes
them).

Pure: the caller passes the time; the per-process state that holds these values is the adapter's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BusyReason(StrEnum):
    """Why a delivery may not start now (the `reason` of recovery_webhook_deliveries_parked_total)."""

    ENDPOINT_BUSY = "endpoint_busy"  # the endpoint's slots are all taken
    MERCHANT_BUSY = "merchant_busy"  # the merchant has its cap of deliveries in flight
    RATE_LIMITED = "rate_limited"  # the endpoint's deliveries per second are used up
    SLOW_SHARE_FULL = "slow_share_full"  # a slow endpoint, and the slow endpoints' share is taken


def is_slow(*, mean_seconds: float, overdue: int, prompt_seconds: float) -> bool:
    """An endpoint is slow while one of its deliveries has been waiting for its answer longer than
    `prompt_seconds` (`overdue`), or when its deliveries take that long on average."""
    return overdue > 0 or mean_seconds >= prompt_seconds


def worth_waiting(*, ahead: int, mean_seconds: float, slots: int, budget_seconds: float) -> bool:
    """Whether a delivery that finds its endpoint's `slots` all taken should wait for one (up to `budget_seconds`)
    rather than be parked: the endpoint frees a slot every `mean_seconds / slots` on average, so the delivery
    behind `ahead` others expects its slot after `(ahead + 1) * mean_seconds / slots`. An endpoint with no
    delivery over yet (mean 0) is given the budget. At most `slots` deliveries wait for one endpoint: a waiting
    delivery holds its message (the broker's prefetch), so one endpoint holds at most twice its slots of it."""
    if budget_seconds <= 0 or ahead >= slots:
        return False
    return (ahead + 1) * mean_seconds / slots <= budget_seconds


@dataclass(frozen=True, slots=True)
class Busy:
    """A delivery that waits on a timer, holding nothing, until `until`; `reason` goes on its record."""

    why: BusyReason
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """`rate` deliveries per second, in bursts of at most `rate` (one second's worth)."""

    rate: int
    tokens: float
    at: datetime

    @classmethod
    def full(cls, rate: int, now: datetime) -> TokenBucket:
        return cls(rate, float(rate), now)

    def take(self, now: datetime) -> TokenBucket | None:
        """The bucket after one delivery's token, or None when there is none left now."""
        tokens = self._tokens_at(now)
        if tokens < 1.0:
            return None
        return TokenBucket(self.rate, tokens - 1.0, max(now, self.at))

    def next_token_at(self, now: datetime) -> datetime:
        missing = max(1.0 - self._tokens_at(now), 0.0)
        return now + timedelta(seconds=missing / self.rate)

    def _tokens_at(self, now: datetime) -> float:
        elapsed = max((now - self.at).total_seconds(), 0.0)
        return min(float(self.rate), self.tokens + elapsed * self.rate)


@dataclass(frozen=True, slots=True)
class Parking:
    """When the next delivery parked for one endpoint comes back (`next_due`)."""

    next_due: datetime | None = None

    def park(
        self, now: datetime, *, not_before: datetime, spacing: timedelta, max_hold: timedelta
    ) -> tuple[datetime, Parking]:
        """A parked delivery's due time, and the parking after it: no sooner than `not_before`, `spacing` after
        the one parked before it (a backlog comes back spread out, not all at once), and never later than
        `max_hold` from now."""
        due = min(max(self.next_due or now, not_before), now + max_hold)
        return due, Parking(due + spacing)
