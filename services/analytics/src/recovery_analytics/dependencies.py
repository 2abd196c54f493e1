"""What the analytics handlers are given: the storage ports (MongoDB in adapters/, in memory in the unit tests),
the adapters bundle `build_service` accepts, and the queries the HTTP API asks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from recovery_analytics.domain.figures import DayFigures
from recovery_analytics.domain.record import ViewRecord
from recovery_contracts.envelope import Envelope
from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort


class ConcurrentUpdate(Exception):
    """Another instance saved the payment's view first: the event is folded again on the newer one."""


class EventLog(Protocol):
    """Every event the projection consumed, keyed by message id: its idempotency record and its history."""

    async def append(self, envelope: Envelope[Any], payment_id: str | None, tx: Transaction) -> bool:
        """Store the event; False when an event with its message id is stored already (a duplicate)."""
        ...

    async def of_payment(self, payment_id: str, tx: Transaction) -> list[Envelope[Any]]:
        """Every stored event of the payment (read only for a view that does not carry its events)."""
        ...

    def by_payment(self) -> AsyncIterator[tuple[str, list[Envelope[Any]]]]:
        """Every payment's events, one payment at a time (the rebuild)."""
        ...


@dataclass(frozen=True)
class RecoveryQuery:
    merchant_id: str
    profile_id: str | None = None
    recovery_status: str | None = None
    # Any of these states of the record back (after its last try); empty: any, or none.
    record_back_states: tuple[str, ...] = ()
    # Any of these states of the payment's disputes (`DisputeState`); empty: any, or none.
    dispute_states: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 20
    offset: int = 0
    # Page after this (created_at, payment id): the last item of the previous page.
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True)
class RecoveryPage:
    """One page of the list: its records (newest first), how many match the filters in all, and whether any
    come after the page (`next_cursor` is given exactly then)."""

    records: list[ViewRecord]
    total: int
    more: bool


@dataclass(frozen=True)
class DisputeQuery:
    """`GET /v2/disputes/list`: the merchant's disputes (its profile's on a profile-level call) with these values
    (empty: any), received (`created_at`) within `received` (`(comparison, time)` pairs, each of `eq`, `lt`,
    `lte`, `gt`, `gte`), `limit` of them; newest first, or, `by_answer_by`, the earliest deadline to answer first
    (one without a deadline first of all)."""

    merchant_id: str
    profile_id: str | None = None
    statuses: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    connectors: tuple[str, ...] = ()
    received: tuple[tuple[str, datetime], ...] = ()
    by_answer_by: bool = False
    limit: int = 20


class ViewStore(Protocol):
    """One record per payment (`ViewRecord`); saves are a compare-and-set on the version."""

    async def get(self, payment_id: str, tx: Transaction | None = None) -> ViewRecord | None:
        """The record, with the events it was folded from (`history`) when it carries them."""
        ...

    async def save(self, record: ViewRecord, tx: Transaction) -> None:
        """Store `record` (version n) if the stored one is at n - 1 (none stored: n = 1), else ConcurrentUpdate."""
        ...

    async def of_merchant(self, merchant_id: str, payment_id: str) -> ViewRecord | None: ...

    async def page(self, query: RecoveryQuery) -> RecoveryPage:
        """The query's page: its records (newest first), the total matching the filters, and whether more follow."""
        ...

    async def seconds_to_recover(
        self, merchant_id: str, profile_id: str | None, created_from: datetime, created_before: datetime
    ) -> list[float]: ...

    async def disputes(self, query: DisputeQuery) -> list[dict[str, Any]]:
        """The disputes the query asks for, each as the dispute list answers it (a `DisputeObject` as JSON)."""
        ...

    async def dispute(self, merchant_id: str, profile_id: str | None, dispute_id: str) -> dict[str, Any] | None:
        """The merchant's dispute (its profile's, when given) as the list answers it; None when it has none."""
        ...


class DailyStore(Protocol):
    """Per merchant, profile and UTC day: the counters of the payments accepted that day (`between` may answer a
    day in several parts: its figures are their sum)."""

    async def add(
        self, merchant_id: str, profile_id: str, day: date, part: int, delta: Mapping[str, int], tx: Transaction
    ) -> None:
        """Move the day (merchant, profile, UTC day) by `delta`, on its part `part` (the transaction's lease:
        handlers.DayParts); the day's figures are the sum of its parts."""
        ...

    async def between(self, merchant_id: str, profile_id: str | None, first: date, last: date) -> list[DayFigures]: ...


@dataclass(frozen=True)
class AnalyticsAdapters:
    """What `build_service` runs on: MongoDB ones by default, in-memory ones in unit tests."""

    unit_of_work: UnitOfWorkPort
    publisher: Publisher
    clock: Clock
    events: EventLog
    views: ViewStore
    days: DailyStore
