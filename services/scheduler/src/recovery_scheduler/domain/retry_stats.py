"""Retry statistics the engine learns from its own attempts: per merchant and key (the standardised decline code
that led to the attempt, the charged card's network and funding), how many attempts were made and how many
succeeded, by day of week, day of month and hour of day in UTC (Hyperswitch's `revenue_recovery_retry_stats`,
juspay/hyperswitch#13793). Pure: the adapter stores the counters this module names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .declines import matching_rule
from .model import AttemptOutcome
from .networks import normalize_card_network

if TYPE_CHECKING:
    from recovery_contracts.recovery import RecoveryPayment

    from .model import Attempt
    from .planning import Change
    from .recovery import Recovery

# What stands in a key's dimension when nothing better is known.
UNKNOWN = "unknown"
# A decline whose codes name no row of the decline table (declines.DECLINE_RULES).
UNRECOGNISED = "unrecognised"
# A call that failed without a decline (a connector or API error) and named no row either.
CONNECTOR_ERROR = "connector_error"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Funding(StrEnum):
    """How the card is funded (the billing system's `card_type`)."""

    CREDIT = "credit"
    DEBIT = "debit"
    PREPAID = "prepaid"
    UNKNOWN = "unknown"


class Bucketing(StrEnum):
    """The three ways a key's attempts are counted over time, all in UTC."""

    DAY_OF_WEEK = "day_of_week"  # 1 = Monday ... 7 = Sunday (ISO 8601)
    DAY_OF_MONTH = "day_of_month"  # 1 ... 31
    HOUR_OF_DAY = "hour_of_day"  # 0 ... 23

    @property
    def buckets(self) -> range:
        return {"day_of_week": range(1, 8), "day_of_month": range(1, 32), "hour_of_day": range(24)}[self.value]

    def name_of(self, bucket: int) -> str:
        """A bucket's field name in storage: `mon`, `d05`, `h13` (never a bare number, which a path could take
        for an array index)."""
        if self is Bucketing.DAY_OF_WEEK:
            return WEEKDAYS[bucket - 1]
        return f"{'d' if self is Bucketing.DAY_OF_MONTH else 'h'}{bucket:02d}"

    def bucket_of(self, at: datetime) -> int:
        if self is Bucketing.DAY_OF_WEEK:
            return at.isoweekday()
        return at.day if self is Bucketing.DAY_OF_MONTH else at.hour


def funding_of(card_type: str | None) -> Funding:
    """`"credit"`, `"Debit"`, `"prepaid debit"` ...; anything else unknown."""
    words = (card_type or "").lower()
    for funding in (Funding.PREPAID, Funding.DEBIT, Funding.CREDIT):
        if funding.value in words:
            return funding
    return Funding.UNKNOWN


def standard_decline_code(
    decline_code: str | None,
    network_decline_code: str | None = None,
    error_code: str | None = None,
    *,
    error: bool = False,
) -> str:
    """One name per row of the decline table, whichever field or spelling named it (`51`, `insufficient_funds`:
    `insufficient_funds`): the row's first Stripe code, else its first ISO code. `error`: the call failed without
    a decline, so no row means a connector error rather than an unrecognised decline."""
    matched = matching_rule(decline_code, network_decline_code, error_code)
    if matched is None:
        return CONNECTOR_ERROR if error else UNRECOGNISED
    rule = matched[1]
    return (rule.stripe_codes or rule.iso_codes)[0]


@dataclass(frozen=True)
class StatsKey:
    merchant_id: str
    decline_code: str
    card_network: str
    funding: str


@dataclass(frozen=True)
class RetryOutcome:
    """One attempt as the statistics count it: under `key`, at `at` (UTC), approved or not."""

    key: StatsKey
    payment_id: str
    attempt_id: str
    at: datetime
    succeeded: bool

    def increments(self) -> dict[str, int]:
        """The counters this attempt moves (`attempts`, `successes`, and each bucketing's bucket of `at`)."""
        moved = ("attempts", "successes") if self.succeeded else ("attempts",)
        paths = [""] + [f"{b.value}.{b.name_of(b.bucket_of(self.at))}." for b in Bucketing]
        return {f"{path}{counter}": 1 for path in paths for counter in moved}


def retry_outcomes(change: Change) -> tuple[RetryOutcome, ...]:
    """The attempts `change` adds to its recovery, each under its key: what must be counted with the change, in
    the same write (a redelivered or repeated outcome adds no attempt, so it counts nothing)."""
    known = {a.number for a in change.before.attempts} if change.before is not None else set()
    recovery = change.recovery
    return tuple(_outcome(recovery, a) for a in recovery.attempts if a.number not in known)


def _outcome(recovery: Recovery, attempt: Attempt) -> RetryOutcome:
    key = attempt_key(recovery, attempt.token, attempt.number)
    at = attempt.at.astimezone(UTC) if attempt.at.tzinfo else attempt.at.replace(tzinfo=UTC)
    payment_id = recovery.payment.payment_id
    return RetryOutcome(key, payment_id, attempt.attempt_id, at, attempt.outcome is AttemptOutcome.SUCCEEDED)


def attempt_key(recovery: Recovery, token: str, number: int) -> StatsKey:
    """The key attempt `number` on `token` counts under (or, for an attempt being planned, is like)."""
    payment = recovery.payment
    card = next((t for t in payment.tokens if t.token == token), None)
    return StatsKey(
        merchant_id=payment.merchant_id,
        decline_code=_leading_decline(recovery, number),
        card_network=str(normalize_card_network(card.card_network) or UNKNOWN) if card else UNKNOWN,
        funding=funding_of(card.card_type if card else None).value,
    )


def _leading_decline(recovery: Recovery, number: int) -> str:
    """The decline that led to attempt `number`: the latest failed attempt before it, else the billing system's
    failure that opened the recovery (as juspay/hyperswitch#13793 keys by the triggering attempt's error)."""
    failed = [
        a
        for a in recovery.attempts
        if a.number < number and a.outcome in (AttemptOutcome.DECLINED, AttemptOutcome.ERROR)
    ]
    if failed:
        last = max(failed, key=lambda a: a.number)
        error = last.outcome is AttemptOutcome.ERROR
        codes = last.codes
        return standard_decline_code(codes.decline_code, codes.network_decline_code, codes.error_code, error=error)
    return _billing_decline(recovery.payment)


def _billing_decline(payment: RecoveryPayment) -> str:
    first = payment.first_error
    if first is None:
        return UNKNOWN
    return standard_decline_code(first.code, first.network_decline_code)


# -- reading ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    attempts: int = 0
    successes: int = 0

    @property
    def success_rate(self) -> float | None:
        """Successes per attempt; None when nothing was attempted (no rate, rather than a rate of 0)."""
        return round(self.successes / self.attempts, 4) if self.attempts else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.attempts + other.attempts, self.successes + other.successes)


@dataclass(frozen=True)
class RetryStats:
    """A key's counters: in total, and per bucket of each bucketing (every bucket, zero where nothing counted)."""

    key: StatsKey
    total: Counts = Counts()
    by: Mapping[Bucketing, Mapping[int, Counts]] = field(default_factory=dict)

    @classmethod
    def from_counters(cls, key: StatsKey, counters: Mapping[str, Any]) -> RetryStats:
        """From the counters `increments` moved, as stored: its dotted paths nested (`{"day_of_week": {"mon":
        {"attempts": 2}}}`); a counter never moved is 0."""

        def counts(*path: str) -> Counts:
            node: Any = counters
            for name in path:
                node = node.get(name, {}) if isinstance(node, Mapping) else {}
            found = node if isinstance(node, Mapping) else {}
            return Counts(int(found.get("attempts", 0)), int(found.get("successes", 0)))

        by = {b: {n: counts(b.value, b.name_of(n)) for n in b.buckets} for b in Bucketing}
        return cls(key, counts(), by)

    @classmethod
    def from_increments(cls, key: StatsKey, increments: Mapping[str, int]) -> RetryStats:
        """From `RetryOutcome.increments` summed (dotted paths), as the adapter's `$inc` stores them."""
        nested: dict[str, Any] = {}
        for path, n in increments.items():
            *parents, name = path.split(".")
            node = nested
            for parent in parents:
                node = node.setdefault(parent, {})
            node[name] = node.get(name, 0) + n
        return cls.from_counters(key, nested)

    def __add__(self, other: RetryStats) -> RetryStats:
        by = {b: {n: self.bucket(b, n) + other.bucket(b, n) for n in b.buckets} for b in Bucketing}
        return RetryStats(self.key, self.total + other.total, by)

    def bucket(self, bucketing: Bucketing, bucket: int) -> Counts:
        return self.by.get(bucketing, {}).get(bucket, Counts())


def merged(parts: Iterable[RetryStats]) -> list[RetryStats]:
    """One RetryStats per key, its parts summed (the adapter stores a key over several documents), the most
    attempted keys first."""
    by_key: dict[StatsKey, RetryStats] = {}
    for part in parts:
        by_key[part.key] = by_key[part.key] + part if part.key in by_key else part
    return sorted(
        by_key.values(),
        key=lambda s: (-s.total.attempts, s.key.decline_code, s.key.card_network, s.key.funding),
    )
