"""What the scheduler's handlers and timer loop are given: the storage ports (MongoDB in adapters/, in memory in
the unit tests), the adapters, and the one bundle of dependencies."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Protocol

from recovery_runtime.bus import OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort
from recovery_scheduler.domain.budget_writes import Release
from recovery_scheduler.domain.card_budgets import CardBudget
from recovery_scheduler.domain.learned_hours import LearnedHours
from recovery_scheduler.domain.planning import DEFAULT_HORIZON, Ids
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats
from recovery_scheduler.domain.timers import Timer, TimerKind


class RecoveryExists(Exception):
    """A recovery with this payment id is stored already (the insert of a new one lost)."""


class ConcurrentUpdate(Exception):
    """Another message changed the recovery first; the message is retried on the newer state."""


class CardBudgetChanged(ConcurrentUpdate):
    """Another recovery of the merchant reserved or gave back a slot on the card since its budget was read: the
    plan is made again on the newer budget."""


class RecoveryRepository(Protocol):
    """One document per recovery; every save is a compare-and-set on the version it was loaded at."""

    async def get(self, payment_id: str, tx: Transaction | None = None) -> Recovery | None: ...

    async def of_merchant(self, merchant_id: str, payment_id: str) -> Recovery | None:
        """Scoped by merchant: another merchant's payment id reads as absent."""
        ...

    async def insert(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        """Store a new recovery as it is (its version too); RecoveryExists when one is stored already."""
        ...

    async def save(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        """Store the recovery at version + 1 if the stored one is still at `recovery.version`, else
        ConcurrentUpdate; `applied`: the id of the consumed message, recorded in the same write."""
        ...

    async def record_applied(self, payment_id: str, key: str) -> bool:
        """Record a consumed message that changes nothing; False when it was recorded before (a duplicate)."""
        ...


class CardBudgetRepository(Protocol):
    """One document per merchant and card (token): the reservations of the merchant's recoveries on the card."""

    async def read(
        self, merchant_id: str, tokens: Sequence[str], tx: Transaction | None = None
    ) -> dict[str, CardBudget]:
        """The merchant's budgets on these cards, by token (none stored: an empty budget at version 0)."""
        ...

    async def reserve(self, budget: CardBudget, tx: Transaction) -> None:
        """Store `budget`'s reservations at version + 1 if the stored one is still at `budget.version` (0: none
        stored), else CardBudgetChanged."""
        ...

    async def release(self, release: Release, tx: Transaction) -> None:
        """Give back one attempt's slot (no compare-and-set: it only frees; the version moves on, so that a plan
        made on the budget read before does not write the slot back)."""
        ...


class TimerRepository(Protocol):
    """The timers handlers store and cancel; ids are deterministic, so storing one is idempotent."""

    async def add(self, timer: Timer, tx: Transaction) -> bool:
        """Store a timer; False if one with its id exists."""
        ...

    async def add_new(self, timer: Timer, tx: Transaction) -> None:
        """Store a timer of a recovery stored in the same transaction (no timer of it can exist: no look-up)."""
        ...

    async def cancel_planned(self, payment_id: str, tx: Transaction, keep: Sequence[str] = ()) -> frozenset[str]:
        """Cancel the recovery's planned work still pending (`domain.timers.PLANNED_WORK`) but the timers `keep`
        names (the ones this change stores); the ids cancelled (each had not fired)."""
        ...

    async def next_due(self, payment_id: str, purposes: Sequence[str]) -> datetime | None:
        """When the payment's earliest timer of one of `purposes` not fired yet is due."""
        ...


class RetryStatsRepository(Protocol):
    """The merchant's retry statistics (domain/retry_stats.py): an attempt is counted once the change that
    records it committed, so that an outcome applied once is counted at most once."""

    async def record(self, outcomes: Sequence[RetryOutcome], tx: Transaction) -> None:
        """Count each attempt under its key once `tx` committed (nothing for a try that failed or is retried);
        the count itself may be written later."""
        ...

    async def of_merchant(self, merchant_id: str) -> list[RetryStats]:
        """Every key of the merchant's, its counts summed, the most attempted first."""
        ...

    async def learned(self, merchant_id: str) -> LearnedHours:
        """The merchant's learned hours (domain/learned_hours.py), read through a short-lived cache: switched
        on, every smart plan asks, and statistics a few minutes old serve it as well."""
        ...


@dataclass(frozen=True)
class ClaimedTimer:
    """A timer as a claim hands it to the timer loop: publish `message`, or re-plan `payment_id`."""

    timer_id: str
    kind: TimerKind
    due_at: datetime
    payment_id: str | None
    purpose: str
    message: OutgoingMessage | None
    # The W3C trace context the timer was stored in (tracing on): its re-plan continues the recovery's trace.
    trace_context: dict[str, str] | None = None


@dataclass
class Claim:
    """One batch of timers claimed together. Its record (written before the timers are marked) stands for the
    batch until its messages are confirmed; if the instance dies first, another one takes the record over once its
    lease expires and fires the batch again."""

    claim_id: str
    timers: list[ClaimedTimer] = field(default_factory=list)
    # The earliest pending timer seen falling due after the claim's `now` (within the lookahead asked for).
    next_due: datetime | None = None
    # The batch limit was reached: more timers may be due already.
    full: bool = False
    # What the claim covers: the due-time range [low, high], or exactly `ids` (many timers sharing one due time).
    low: datetime | None = None
    high: datetime | None = None
    ids: list[str] | None = None


class TimerClaims(Protocol):
    """The claim protocol any number of scheduler instances share (adapters/timers.py says how)."""

    async def claim_due(
        self,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int,
        *,
        lookahead: timedelta = timedelta(0),
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> Claim: ...

    async def complete(self, claim: Claim) -> None: ...

    async def release(self, claim: Claim) -> int: ...

    async def retry_later(self, claim: Claim, timer_ids: list[str], now: datetime, lease: timedelta) -> None: ...

    async def take_over_expired(self, now: datetime, owner: str, lease: timedelta, limit: int = 10) -> list[Claim]: ...

    async def release_expired(self, now: datetime) -> int: ...

    async def drop_obsolete_indexes(self) -> None: ...


class SchedulerTimers(TimerRepository, TimerClaims, Protocol):
    """Both sides of the timers: the handlers store them, the loop claims and fires them."""


@dataclass(frozen=True)
class SchedulerAdapters:
    """The scheduler's I/O and sources of time, randomness and ids: built by app.py from settings, or passed in
    (the unit tests' in-memory ones)."""

    unit_of_work: UnitOfWorkPort
    publisher: Publisher
    clock: Clock
    recoveries: RecoveryRepository
    card_budgets: CardBudgetRepository
    timers: SchedulerTimers
    retry_stats: RetryStatsRepository
    ids: Ids
    rng: random.Random


@dataclass(frozen=True)
class Dependencies(SchedulerAdapters):
    """What every handler takes: the adapters, and the settings and hooks the handlers use."""

    time_scale: float  # business seconds per wall-clock second (TIME_SCALE)
    horizon: timedelta  # a recovery ends this long (business time) after its payment was created
    # Told each stored timer's due time once committed (the timer loop: a retry due now fires now).
    timer_stored: Callable[[datetime], None]
    # Smart reads the merchant's learned hours when it plans (SMART_LEARNED_HOURS).
    learned_hours: bool = False

    @classmethod
    def of(
        cls,
        adapters: SchedulerAdapters,
        *,
        time_scale: float,
        timer_stored: Callable[[datetime], None],
        horizon: timedelta = DEFAULT_HORIZON,
        learned_hours: bool = False,
    ) -> Dependencies:
        given = {f.name: getattr(adapters, f.name) for f in fields(SchedulerAdapters)}
        return cls(
            **given, time_scale=time_scale, horizon=horizon, timer_stored=timer_stored, learned_hours=learned_hours
        )
