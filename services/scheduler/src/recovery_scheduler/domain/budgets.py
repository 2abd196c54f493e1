"""Card-network retry budgets: data with their rule edition and source, and the earliest time they allow.

Budgets count every authorization on the card (per token): this system's attempts, the billing system's own
retries, and attempts of other recoveries on the same card. They are a ceiling no algorithm passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .networks import CardNetwork, normalize_card_network


@dataclass(frozen=True)
class RetryLimit:
    """At most `max_attempts` authorizations on one card per window.

    `utc_day`: the window is the UTC calendar day (when it is used up, wait until the next UTC midnight,
    Hyperswitch's rule); otherwise a rolling window of `window` ending at the planned time.
    """

    max_attempts: int
    window: timedelta
    utc_day: bool
    source: str
    rule_edition: str

    def release_time(self, attempts_at: Sequence[datetime], at: datetime) -> datetime:
        """The earliest time >= `at` at which one more attempt stays within this limit."""
        if self.utc_day:
            day_start = datetime.combine(at.date(), time(0), tzinfo=at.tzinfo)
            used = sum(1 for a in attempts_at if day_start <= a <= at)
            return at if used < self.max_attempts else day_start + timedelta(days=1)
        in_window = sorted(a for a in attempts_at if at - self.window < a <= at)
        if len(in_window) < self.max_attempts:
            return at
        # Once the oldest (len - max + 1) attempts have left the window, one more fits.
        return in_window[len(in_window) - self.max_attempts] + self.window


@dataclass(frozen=True)
class NetworkBudget:
    network: CardNetwork | None  # None: the budget for cards of unknown network
    limits: tuple[RetryLimit, ...]

    def earliest_allowed(self, attempts_at: Iterable[datetime], at: datetime) -> datetime:
        """The earliest time >= `at` at which every limit allows one more attempt."""
        times = tuple(attempts_at)
        candidate = at
        # Each pass moves to a time one limit accepts; past attempts are finite, so this settles.
        for _ in range(len(times) * len(self.limits) + 2):
            later = max(limit.release_time(times, candidate) for limit in self.limits)
            if later == candidate:
                return candidate
            candidate = later
        return candidate

    def allows(self, attempts_at: Iterable[datetime], at: datetime) -> bool:
        return self.earliest_allowed(attempts_at, at) == at


_DAY = timedelta(days=1)
_30_DAYS = timedelta(days=30)
_HYPERSWITCH = "Hyperswitch revenue recovery default network budgets (hyperswitch.md section 3)"
_HYPERSWITCH_EDITION = "Hyperswitch defaults as read 2026"

VISA_BUDGET = NetworkBudget(
    CardNetwork.VISA,
    (
        RetryLimit(20, _DAY, True, _HYPERSWITCH, _HYPERSWITCH_EDITION),
        RetryLimit(
            20,
            _30_DAYS,
            False,
            "Visa Core Rules, excessive reattempts: categories 2-4 at most 20 per rolling 30 days "
            "(15 under the older rule); category 1 never",
            "Visa Core Rules, 18 Apr 2026",
        ),
    ),
)
MASTERCARD_BUDGET = NetworkBudget(
    CardNetwork.MASTERCARD,
    (
        RetryLimit(10, _DAY, True, _HYPERSWITCH, _HYPERSWITCH_EDITION),
        # Mastercard counts 24 hours, not a calendar day: enforce both.
        RetryLimit(
            10,
            _DAY,
            False,
            "Mastercard excessive retries: at most 10 declines on the same card per 24 h (via processors)",
            "Mastercard rule as summarised in recovery-rules.md (2026)",
        ),
        RetryLimit(
            35,
            _30_DAYS,
            False,
            "Mastercard: at most 35 attempts on the same card, merchant and amount per 30 days",
            "Mastercard rule as summarised in recovery-rules.md (2026)",
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

# Unknown network: the strictest of the known limits, so no network's rule can be broken.
UNKNOWN_NETWORK_BUDGET = NetworkBudget(
    None,
    (
        RetryLimit(10, _DAY, True, "this project: strictest known daily limit (Mastercard)", "project policy 2026"),
        RetryLimit(10, _DAY, False, "this project: strictest known 24 h limit (Mastercard)", "project policy 2026"),
        RetryLimit(20, _30_DAYS, False, "this project: strictest known 30-day limit (Visa)", "project policy 2026"),
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
