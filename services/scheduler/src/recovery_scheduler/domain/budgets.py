"""Card-network retry budgets: data with their rule edition and source, what each limit counts, and the earliest
time they allow.

A budget is one merchant's (the rules count a merchant's own reattempts on a card: the fees go to that merchant's
acquirer). What counts: this recovery's attempts, the billing system's own retries of the invoice, and the other
recoveries of the same merchant on the same card, planned (reserved) or made. They are a ceiling no algorithm
passes. Each limit says what it counts (attempts or declines; on any amount or on the same amount and currency).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from .networks import CardNetwork, normalize_card_network


@dataclass(frozen=True)
class CardUse:
    """One authorization of the merchant's on a card, as budgets count it, seen from the payment being planned:
    `same_amount` (same amount and currency as that payment), `declined` (declined, or not known yet: planned or
    unsettled, so it may still be a decline)."""

    at: datetime
    same_amount: bool = True
    declined: bool = True


class Counted(StrEnum):
    ATTEMPTS = "attempts"  # every authorization attempt
    DECLINES = "declines"  # declined attempts (an attempt not settled yet counts: it may be declined)


@dataclass(frozen=True)
class RetryLimit:
    """At most `max_attempts` of what it counts on one card per window.

    `utc_day`: the window is the UTC calendar day (when it is used up, wait until the next UTC midnight,
    Hyperswitch's rule); otherwise a rolling window of `window`. `same_amount`: only authorizations of the same
    amount and currency count (Visa's and Mastercard's 30-day rules).
    """

    max_attempts: int
    window: timedelta
    utc_day: bool
    source: str
    rule_edition: str
    counted: Counted = Counted.ATTEMPTS
    same_amount: bool = False

    def counts(self, use: CardUse) -> bool:
        return (use.same_amount or not self.same_amount) and (use.declined or self.counted is Counted.ATTEMPTS)

    def describe(self) -> str:
        """E.g. `20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr
        2026)`: what the limit counts and its edition, as plans' reasons show it."""
        if self.utc_day:
            per = "UTC day"
        elif self.window >= timedelta(days=2) and not self.window % timedelta(days=1):
            per = f"rolling {self.window.days} days"
        else:
            per = f"rolling {self.window.total_seconds() / 3600:g} h"
        scope = "on the card, same amount and currency" if self.same_amount else "on the card"
        return f"{self.max_attempts} {self.counted.value} per {per} {scope} ({self.rule_edition})"

    def release_time(self, uses: Iterable[CardUse], at: datetime) -> datetime:
        """The earliest time >= `at` at which one more authorization keeps every window of this limit that holds
        it within the limit. Planned authorizations (reservations) may lie after `at`: every window containing the
        new one counts, not only the one ending at it."""
        # Sorted, so that a window's count is two bisections (a card's history may hold thousands of uses).
        counted = sorted(u.at for u in uses if self.counts(u))
        if self.utc_day:
            candidate = at
            while self._day_count(counted, candidate) >= self.max_attempts:
                candidate = datetime.combine(candidate.date(), time(0), tzinfo=candidate.tzinfo) + timedelta(days=1)
            return candidate
        # Fitting can only begin where an authorization leaves the windows reaching back from the candidate.
        for candidate in sorted({at, *(u + self.window for u in counted if u + self.window > at)}):
            if self._fits(counted, candidate):
                return candidate
        raise AssertionError("past every counted authorization's window one more always fits")

    def _day_count(self, counted: Sequence[datetime], at: datetime) -> int:
        day_start = datetime.combine(at.date(), time(0), tzinfo=at.tzinfo)
        return bisect_left(counted, day_start + timedelta(days=1)) - bisect_left(counted, day_start)

    def _fits(self, counted: Sequence[datetime], at: datetime) -> bool:
        # The windows (end - window, end] holding `at` have end in [at, at + window); the count peaks at `at` or
        # where an authorization enters.
        entering = counted[bisect_right(counted, at) : bisect_left(counted, at + self.window)]
        return all(self._in_window(counted, end) < self.max_attempts for end in [at, *dict.fromkeys(entering)])

    def _in_window(self, counted: Sequence[datetime], end: datetime) -> int:
        """The counted authorizations in the window (end - window, end]."""
        return bisect_right(counted, end) - bisect_right(counted, end - self.window)


def _uses(items: Iterable[CardUse | datetime]) -> tuple[CardUse, ...]:
    """Bare times count as declined attempts of the same amount (the strictest reading)."""
    return tuple(u if isinstance(u, CardUse) else CardUse(u) for u in items)


@dataclass(frozen=True)
class NetworkBudget:
    network: CardNetwork | None  # None: the budget for cards of unknown network
    limits: tuple[RetryLimit, ...]

    def earliest_allowed(self, uses: Iterable[CardUse | datetime], at: datetime) -> datetime:
        """The earliest time >= `at` at which every limit allows one more authorization."""
        counted = _uses(uses)
        candidate = at
        # Each pass moves to a time one limit accepts; the authorizations are finite, so this settles.
        for _ in range(len(counted) * len(self.limits) * 2 + 2):
            later = max(limit.release_time(counted, candidate) for limit in self.limits)
            if later == candidate:
                return candidate
            candidate = later
        return candidate

    def allows(self, uses: Iterable[CardUse | datetime], at: datetime) -> bool:
        return self.earliest_allowed(uses, at) == at

    def binding(self, uses: Iterable[CardUse | datetime], at: datetime) -> tuple[RetryLimit, ...]:
        """The limits that refuse one more authorization at `at` (those a wait is for)."""
        counted = _uses(uses)
        return tuple(limit for limit in self.limits if limit.release_time(counted, at) > at)

    def why_full(self, uses: Iterable[CardUse | datetime], at: datetime) -> str:
        """The limits that refuse one more authorization at `at`, with their editions: a plan's reason."""
        return "; ".join(limit.describe() for limit in self.binding(uses, at)) or "no limit"


_DAY = timedelta(days=1)
_30_DAYS = timedelta(days=30)
_HYPERSWITCH = "Hyperswitch revenue recovery default network budgets (helm chart; hyperswitch.md section 3)"
_HYPERSWITCH_EDITION = "Hyperswitch helm chart defaults, as read 2026"
_MASTERCARD_EDITION = "Mastercard rules as summarised in recovery-rules.md (2026)"

VISA_BUDGET = NetworkBudget(
    CardNetwork.VISA,
    (
        RetryLimit(20, _DAY, True, _HYPERSWITCH, _HYPERSWITCH_EDITION),
        RetryLimit(
            20,
            _30_DAYS,
            False,
            "Visa Core Rules, excessive reattempts: categories 2-4 at most 20 reattempts per rolling 30 days for "
            "the same card, amount and currency (15 under the older rule), merchant-initiated counted apart from "
            "customer-initiated; category 1 never",
            "Visa Core Rules, 18 Apr 2026",
            same_amount=True,
        ),
    ),
)
MASTERCARD_BUDGET = NetworkBudget(
    CardNetwork.MASTERCARD,
    (
        RetryLimit(10, _DAY, True, _HYPERSWITCH, _HYPERSWITCH_EDITION),
        # Mastercard counts 24 hours, not a calendar day, and declines: enforce both this and the UTC day.
        RetryLimit(
            10,
            _DAY,
            False,
            "Mastercard excessive retries: at most 10 declines on the same card per 24 h",
            _MASTERCARD_EDITION,
            counted=Counted.DECLINES,
        ),
        RetryLimit(
            35,
            _30_DAYS,
            False,
            "Mastercard: at most 35 attempts on the same card, merchant and amount per 30 days",
            _MASTERCARD_EDITION,
            same_amount=True,
        ),
    ),
)


def _common_default(network: CardNetwork) -> NetworkBudget:
    source = f"{network.value}: no category codes; 20/day and 20/30 days is the common default (Hyperswitch)"
    return NetworkBudget(
        network,
        (
            RetryLimit(20, _DAY, True, source, _HYPERSWITCH_EDITION),
            RetryLimit(20, _30_DAYS, False, source, _HYPERSWITCH_EDITION),
        ),
    )


AMEX_BUDGET = _common_default(CardNetwork.AMEX)
DISCOVER_BUDGET = _common_default(CardNetwork.DISCOVER)

# Unknown network: the strictest of the known limits, counting every attempt on any amount, so no network's rule
# can be broken.
_PROJECT = "this project's policy for cards of unknown network, 2026"
UNKNOWN_NETWORK_BUDGET = NetworkBudget(
    None,
    (
        RetryLimit(10, _DAY, True, "this project: strictest known daily limit (Mastercard)", _PROJECT),
        RetryLimit(10, _DAY, False, "this project: strictest known 24 h limit (Mastercard)", _PROJECT),
        RetryLimit(20, _30_DAYS, False, "this project: strictest known 30-day limit (Visa)", _PROJECT),
    ),
)

DEFAULT_NETWORK_BUDGETS: tuple[NetworkBudget, ...] = (
    VISA_BUDGET,
    MASTERCARD_BUDGET,
    AMEX_BUDGET,
    DISCOVER_BUDGET,
)


def budget_for(
    card_network: str | None,
    budgets: Sequence[NetworkBudget] = DEFAULT_NETWORK_BUDGETS,
    unknown: NetworkBudget = UNKNOWN_NETWORK_BUDGET,
) -> NetworkBudget:
    network = normalize_card_network(card_network)
    return next((b for b in budgets if b.network is network and network is not None), unknown)
