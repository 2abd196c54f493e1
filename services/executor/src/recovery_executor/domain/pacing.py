"""The request budget of one connector account, shared by every executor: a pace the executors keep so that their
charges and syncs never take more than a set share of the account's API rate limit.

Stripe limits each account to 100 requests a second in live mode and 25 in its sandbox, across everything that
uses the account, and asks that background work (which recovery retries are) take a subset of that, so the
merchant's own live charges still pass (docs/retry-engine.md, "Pacing the connector"). The budget is GCRA (a token
bucket told by one time, `tat`, its theoretical arrival time) kept as a reservation: every request reserves the next
free turn, taken now while the burst lasts and then one `interval` apart, and waits for it. A burst of payday
retries is spread at the pace instead of meeting 429s that each cost a PSYNC. A 429 all the same (the merchant's
own traffic used the account's limit) holds the account's turns for a moment, for every executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pace:
    """`per_second` requests a second for one account, `burst` of them at once after a quiet spell."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a pace needs per_second > 0 and burst >= 1")

    @property
    def interval(self) -> timedelta:
        """The turns' spacing, whole milliseconds (what a BSON date holds), at least one."""
        return timedelta(milliseconds=max(1, round(1000 / self.per_second)))

    @property
    def tolerance(self) -> timedelta:
        """How far ahead of now the reserved turns may run before a request has to wait: the burst."""
        return self.interval * (self.burst - 1)

    def held_tat(self, now: datetime, seconds: float) -> datetime:
        """The account's `tat` that makes its next turn come no earlier than `seconds` from `now` (the connector
        answered 429: every executor backs off together)."""
        return now + timedelta(seconds=seconds) + self.tolerance

    def waits(self, tat_after: datetime, count: int, now: datetime) -> list[float]:
        """Seconds from `now` until each of the `count` turns a reservation got, given the account's `tat` once the
        reservation moved it on by `count` intervals: turn i is due at its arrival time less the tolerance."""
        first = tat_after - self.interval * count
        return [max(0.0, (first + self.interval * i - self.tolerance - now).total_seconds()) for i in range(count)]
