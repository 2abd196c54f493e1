"""In-memory stand-ins for the scheduler's repositories, with the MongoDB ones' rules (an insert refuses an
existing id, a save is a compare-and-set on the version, timer ids are unique), ids that count, and the scheduler
built around them under FastStream's TestRabbitBroker."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from faststream.rabbit import RabbitBroker

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.recovery import RecoveryPayment
from recovery_runtime.service import Service
from recovery_runtime.testing import FixedClock, InMemoryUnitOfWork, RecordingPublisher, publish
from recovery_runtime.unit_of_work import APPLIED_KEEP, Transaction
from recovery_scheduler.adapters.timers import outgoing_message
from recovery_scheduler.app import build_service
from recovery_scheduler.dependencies import (
    CardBudgetChanged,
    Claim,
    ClaimedTimer,
    ConcurrentUpdate,
    Dependencies,
    RecoveryExists,
    SchedulerAdapters,
)
from recovery_scheduler.domain.budget_writes import Release
from recovery_scheduler.domain.card_budgets import CardBudget
from recovery_scheduler.domain.learned_hours import LearnedHours, learned_hours
from recovery_scheduler.domain.plans import AttemptPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey, merged
from recovery_scheduler.domain.timers import PLANNED_WORK, Timer, TimerStatus
from recovery_scheduler.handlers import replan
from recovery_scheduler.settings import SchedulerSettings
from recovery_scheduler.timer_loop import TimerLoop

INSTANCE = "scheduler-1"
LEASE = timedelta(seconds=30)


class CountingIds:
    def __init__(self) -> None:
        self.issued = 0

    def attempt_id(self) -> str:
        self.issued += 1
        return f"12345_att_{self.issued}"

    def message_id(self) -> str:
        self.issued += 1
        return f"msg_{self.issued}"


def _applied(recovery: Recovery, key: str | None) -> Recovery:
    if key is None:
        return recovery
    kept = [k for k in recovery.applied_messages if k != key]
    return replace(recovery, applied_messages=(*kept, key)[-APPLIED_KEEP:])


class InMemoryRecoveries:
    """`race_next`, when set, runs once just before the next insert or save: another writer's change landing
    between this handler's read and its write."""

    def __init__(self) -> None:
        self.records: dict[str, Recovery] = {}
        self.race_next: Callable[[], None] | None = None

    def _race(self) -> None:
        race, self.race_next = self.race_next, None
        if race is not None:
            race()

    def written_elsewhere(self, payment_id: str) -> None:
        """Another message's change to the recovery: its version moves on."""
        stored = self.records[payment_id]
        self.records[payment_id] = replace(stored, version=stored.version + 1)

    async def get(self, payment_id: str, tx: Transaction | None = None) -> Recovery | None:
        return self.records.get(payment_id)

    async def of_merchant(self, merchant_id: str, payment_id: str) -> Recovery | None:
        recovery = self.records.get(payment_id)
        return recovery if recovery is not None and recovery.merchant_id == merchant_id else None

    async def insert(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        self._race()
        if recovery.payment_id in self.records:
            raise RecoveryExists(recovery.payment_id)
        self.records[recovery.payment_id] = _applied(recovery, applied)

    async def save(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        self._race()
        stored = self.records.get(recovery.payment_id)
        if stored is None or stored.version != recovery.version:
            raise ConcurrentUpdate(recovery.payment_id)
        self.records[recovery.payment_id] = replace(_applied(recovery, applied), version=recovery.version + 1)

    async def record_applied(self, payment_id: str, key: str) -> bool:
        stored = self.records.get(payment_id)
        if stored is None or stored.has_applied(key):
            return False
        self.records[payment_id] = _applied(stored, key)
        return True


class InMemoryCardBudgets:
    """Card budgets by (merchant, token) with the MongoDB one's compare-and-set: a reservation written on a budget
    read at an older version loses (CardBudgetChanged). A write is applied when the unit of work commits, as the
    transaction's would be (a recovery whose insert loses afterwards leaves the budget as it was). `race_next`,
    when set, runs once just before the next reservation: another scheduler instance's reservation landing
    between this plan's read and its write."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], CardBudget] = {}
        self.race_next: Callable[[], None] | None = None
        self.lost = 0

    def of(self, merchant_id: str, token: str) -> CardBudget:
        return self.stored.get((merchant_id, token)) or CardBudget(merchant_id, token)

    def put(self, budget: CardBudget) -> None:
        """Store `budget` as another writer would (its version moves on)."""
        current = self.of(budget.merchant_id, budget.token)
        self.stored[(budget.merchant_id, budget.token)] = replace(budget, version=current.version + 1)

    async def read(
        self, merchant_id: str, tokens: Sequence[str], tx: Transaction | None = None
    ) -> dict[str, CardBudget]:
        return {token: self.of(merchant_id, token) for token in tokens}

    async def reserve(self, budget: CardBudget, tx: Transaction) -> None:
        race, self.race_next = self.race_next, None
        if race is not None:
            race()
        if self.of(budget.merchant_id, budget.token).version != budget.version:
            self.lost += 1
            raise CardBudgetChanged(f"{budget.merchant_id}/{budget.token}")
        key = (budget.merchant_id, budget.token)
        # As MongoDB's: one with nothing in it (no reservation, no decline, no word on the card) goes.
        if not budget.reservations and not budget.hard_declines and budget.not_before is None:
            tx.after_commit(lambda: self.stored.pop(key, None))
            return
        tx.after_commit(lambda: self.stored.__setitem__(key, replace(budget, version=budget.version + 1)))

    async def release(self, release: Release, tx: Transaction) -> None:
        def give_back() -> None:
            budget = self.of(release.merchant_id, release.token)
            kept = tuple(
                r
                for r in budget.reservations
                if (r.payment_id, r.attempt_number) != (release.payment_id, release.attempt_number)
            )
            self.stored[(release.merchant_id, release.token)] = replace(
                budget, reservations=kept, version=budget.version + 1
            )

        tx.after_commit(give_back)


class InMemoryRetryStats:
    """The retry statistics as the outcomes counted; a count lands when the unit of work commits, as the
    transaction's `$inc` would (a try planned again after a lost race counts nothing)."""

    def __init__(self) -> None:
        self.counted: list[RetryOutcome] = []

    async def record(self, outcomes: Sequence[RetryOutcome], tx: Transaction) -> None:
        if outcomes:
            tx.after_commit(lambda: self.counted.extend(outcomes))

    async def of_merchant(self, merchant_id: str) -> list[RetryStats]:
        counters: dict[StatsKey, Counter[str]] = {}
        for outcome in self.counted:
            if outcome.key.merchant_id == merchant_id:
                counters.setdefault(outcome.key, Counter()).update(outcome.increments())
        return merged(RetryStats.from_increments(key, increments) for key, increments in counters.items())

    async def learned(self, merchant_id: str) -> LearnedHours:
        # No cache: a unit test sees what it counted at once.
        return learned_hours(await self.of_merchant(merchant_id))


@dataclass
class StoredTimer:
    timer: Timer
    status: TimerStatus = TimerStatus.PENDING
    claim_id: str | None = None


class InMemoryTimers:
    """Timers by id, claimed by one instance (the claim protocol's sharing is the integration suite's)."""

    def __init__(self) -> None:
        self.stored: dict[str, StoredTimer] = {}
        self.completed: list[str] = []
        self.claims = 0

    def status_of(self, payment_id: str) -> dict[str, str]:
        return {i: t.status.value for i, t in self.stored.items() if t.timer.payment_id == payment_id}

    async def add(self, timer: Timer, tx: Transaction) -> bool:
        if timer.timer_id in self.stored:
            return False
        self.stored[timer.timer_id] = StoredTimer(timer)
        return True

    async def add_new(self, timer: Timer, tx: Transaction) -> None:
        if timer.timer_id in self.stored:
            raise KeyError(f"duplicate timer id {timer.timer_id}")
        self.stored[timer.timer_id] = StoredTimer(timer)

    async def cancel_planned(self, payment_id: str, tx: Transaction, keep: Sequence[str] = ()) -> frozenset[str]:
        planned = [
            t
            for t in self.stored.values()
            if t.timer.payment_id == payment_id
            and t.status is TimerStatus.PENDING
            and t.timer.purpose in PLANNED_WORK
            and t.timer.timer_id not in keep
        ]
        for t in planned:
            t.status = TimerStatus.CANCELLED
        return frozenset(t.timer.timer_id for t in planned)

    async def next_due(self, payment_id: str, purposes: Sequence[str]) -> datetime | None:
        due = [
            t.timer.due_at
            for t in self.stored.values()
            if t.timer.payment_id == payment_id
            and t.timer.purpose in purposes
            and t.status in (TimerStatus.PENDING, TimerStatus.LEASED)
        ]
        return min(due, default=None)

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
    ) -> Claim:
        self.claims += 1
        claim = Claim(f"{owner}:{self.claims}")
        pending = sorted(
            (t for t in self.stored.values() if t.status is TimerStatus.PENDING), key=lambda t: t.timer.due_at
        )
        due = [t for t in pending if t.timer.due_at <= now][:limit]
        claim.next_due = next((t.timer.due_at for t in pending if now < t.timer.due_at <= now + lookahead), None)
        claim.full = len(due) >= limit
        for t in due:
            t.status, t.claim_id = TimerStatus.FIRED, claim.claim_id
            message = outgoing_message(t.timer)
            claim.timers.append(
                ClaimedTimer(
                    t.timer.timer_id, t.timer.kind, t.timer.due_at, t.timer.payment_id, t.timer.purpose, message
                )
            )
        return claim

    async def complete(self, claim: Claim) -> None:
        self.completed.append(claim.claim_id)

    async def release(self, claim: Claim) -> int:
        for claimed in claim.timers:
            self.stored[claimed.timer_id].status = TimerStatus.PENDING
        return len(claim.timers)

    async def retry_later(self, claim: Claim, timer_ids: list[str], now: datetime, lease: timedelta) -> None:
        for timer_id in timer_ids:
            self.stored[timer_id].status = TimerStatus.LEASED

    async def take_over_expired(self, now: datetime, owner: str, lease: timedelta, limit: int = 10) -> list[Claim]:
        return []

    async def release_expired(self, now: datetime) -> int:
        return 0

    async def drop_obsolete_indexes(self) -> None:
        return None


@dataclass
class Scheduler:
    """The scheduler service on in-memory adapters, a timer loop over the same ones, and handles on each."""

    service: Service
    publisher: RecordingPublisher
    clock: FixedClock
    recoveries: InMemoryRecoveries
    card_budgets: InMemoryCardBudgets
    timers: InMemoryTimers
    retry_stats: InMemoryRetryStats
    loop: TimerLoop
    unit_of_work: InMemoryUnitOfWork
    stored_timers_reported: list[datetime] = field(default_factory=list)
    broker: RabbitBroker | None = None  # the TestRabbitBroker, while it runs

    async def send(self, queue_name: str, message: Envelope[Any] | bytes) -> None:
        """Deliver `message` to `queue_name`'s handler through the real consumer pipeline; returns once handled."""
        assert self.broker is not None, "send under TestRabbitBroker (the `scheduler` fixture)"
        await publish(self.broker, queue_name, message)

    def published(self, message_type: MessageType) -> list[Envelope[Any]]:
        return self.publisher.envelopes(message_type)

    def recovery(self, payment_id: str) -> Recovery:
        return self.recoveries.records[payment_id]

    def planned(self, payment: RecoveryPayment) -> AttemptPlan:
        """The payment's recovery's planned attempt (it must have one)."""
        plan = self.recovery(payment.payment_id).plan
        assert isinstance(plan, AttemptPlan), plan
        return plan


def in_memory_scheduler(**settings: Any) -> Scheduler:
    publisher = RecordingPublisher()
    clock = FixedClock()
    recoveries = InMemoryRecoveries()
    card_budgets = InMemoryCardBudgets()
    timers = InMemoryTimers()
    retry_stats = InMemoryRetryStats()
    unit_of_work = InMemoryUnitOfWork(publisher)
    adapters = SchedulerAdapters(
        unit_of_work=unit_of_work,
        publisher=publisher,
        clock=clock,
        recoveries=recoveries,
        card_budgets=card_budgets,
        timers=timers,
        retry_stats=retry_stats,
        ids=CountingIds(),
        rng=random.Random(7),
    )
    configured = SchedulerSettings(service_instance_id=INSTANCE, **settings)
    service = build_service(configured, adapters)
    # The service's own timer loop runs only when it starts; the tests drive one over the same adapters.
    reported: list[datetime] = []
    dependencies = Dependencies.of(
        adapters,
        time_scale=configured.time_scale,
        timer_stored=reported.append,
        horizon=timedelta(seconds=configured.recovery_horizon_seconds),
    )
    loop = TimerLoop(
        timers, publisher, partial(replan, dependencies), clock, INSTANCE, poll_seconds=0.05, batch_size=50, lease=LEASE
    )
    return Scheduler(
        service, publisher, clock, recoveries, card_budgets, timers, retry_stats, loop, unit_of_work, reported
    )
