"""The analytics service on in-memory stores (the ports of recovery_analytics.dependencies), for handler tests."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from faststream.rabbit import RabbitBroker

from recovery_analytics.app import build_service
from recovery_analytics.dependencies import (
    AnalyticsAdapters,
    ConcurrentUpdate,
    DisputeQuery,
    RecoveryPage,
    RecoveryQuery,
)
from recovery_analytics.domain.figures import DayFigures
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.settings import AnalyticsSettings
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope
from recovery_runtime.service import Service
from recovery_runtime.testing import FixedClock, InMemoryUnitOfWork, RecordingPublisher, publish
from recovery_runtime.unit_of_work import Transaction


class InMemoryEventLog:
    def __init__(self) -> None:
        self.events: dict[str, tuple[str | None, Envelope[Any]]] = {}
        # How many times a payment's events were read (the projection's fallback for a view without them).
        self.reads = 0

    async def append(self, envelope: Envelope[Any], payment_id: str | None, tx: Transaction) -> bool:
        if envelope.message_id in self.events:
            return False
        self.events[envelope.message_id] = (payment_id, envelope)
        return True

    async def of_payment(self, payment_id: str, tx: Transaction) -> list[Envelope[Any]]:
        self.reads += 1
        return [envelope for owner, envelope in self.events.values() if owner == payment_id]

    async def by_payment(self) -> AsyncIterator[tuple[str, list[Envelope[Any]]]]:
        owners = sorted({owner for owner, _ in self.events.values() if owner is not None})
        for owner in owners:
            yield owner, [e for o, e in self.events.values() if o == owner]


class InMemoryViews:
    def __init__(self) -> None:
        self.records: dict[str, ViewRecord] = {}
        # Set by a test: the next save loses to "another instance" this many times.
        self.conflicts = 0
        # How many times a view was read inside a transaction (the projection's reads).
        self.reads = 0
        # Each saved record's disputes, by dispute id: the record's merchant and profile, and the dispute.
        self.disputes_saved: dict[str, tuple[str | None, str | None, DisputeObject]] = {}

    async def get(self, payment_id: str, tx: Transaction | None = None) -> ViewRecord | None:
        if tx is not None:
            self.reads += 1
        return self.records.get(payment_id)

    async def save(self, record: ViewRecord, tx: Transaction) -> None:
        stored = self.records.get(record.payment_id)
        if self.conflicts or (stored.version if stored else 0) != record.version - 1:
            self.conflicts = max(0, self.conflicts - 1)
            raise ConcurrentUpdate(record.payment_id)
        self.records[record.payment_id] = record
        for answer in record.disputes:
            dispute = DisputeObject.model_validate(answer)
            self.disputes_saved[dispute.dispute_id] = (record.merchant_id, record.profile_id, dispute)

    async def of_merchant(self, merchant_id: str, payment_id: str) -> ViewRecord | None:
        record = self.records.get(payment_id)
        return record if record is not None and record.merchant_id == merchant_id else None

    async def page(self, query: RecoveryQuery) -> RecoveryPage:
        def matches(r: ViewRecord) -> bool:
            return (
                r.merchant_id == query.merchant_id
                and r.list_item is not None
                and r.created_at is not None
                and (query.profile_id is None or r.profile_id == query.profile_id)
                and (query.recovery_status is None or r.recovery_status == query.recovery_status)
                and (not query.record_back_states or r.record_back_state in query.record_back_states)
                and (not query.dispute_states or r.dispute_state in query.dispute_states)
                and (query.created_from is None or r.created_at >= query.created_from)
                and (query.created_to is None or r.created_at <= query.created_to)
            )

        found = sorted(filter(matches, self.records.values()), key=lambda r: (r.created_at, r.payment_id), reverse=True)
        total = len(found)
        if query.after is not None:
            found = [r for r in found if r.created_at is not None and (r.created_at, r.payment_id) < query.after]
        rest = found[query.offset :]
        return RecoveryPage(rest[: query.limit], total, more=len(rest) > query.limit)

    async def seconds_to_recover(
        self, merchant_id: str, profile_id: str | None, created_from: datetime, created_before: datetime
    ) -> list[float]:
        return [
            r.seconds_to_recover
            for r in self.records.values()
            if r.merchant_id == merchant_id
            and r.seconds_to_recover is not None
            and r.created_at is not None
            and created_from <= r.created_at < created_before
            and (profile_id is None or r.profile_id == profile_id)
        ]

    async def disputes(self, query: DisputeQuery) -> list[dict[str, Any]]:
        checks = {"eq": datetime.__eq__, "lt": datetime.__lt__, "lte": datetime.__le__}
        checks |= {"gt": datetime.__gt__, "gte": datetime.__ge__}

        def matches(merchant: str | None, profile: str | None, d: DisputeObject) -> bool:
            return (
                merchant == query.merchant_id
                and (query.profile_id is None or profile == query.profile_id)
                and (not query.statuses or d.dispute_status.value in query.statuses)
                and (not query.stages or d.dispute_stage.value in query.stages)
                and (not query.reasons or d.connector_reason in query.reasons)
                and (not query.connectors or d.connector in query.connectors)
                and all(checks[op](d.created_at, at) for op, at in query.received)
            )

        found = [d for m, p, d in self.disputes_saved.values() if matches(m, p, d)]
        if query.by_answer_by:
            found.sort(
                key=lambda d: (
                    d.challenge_required_by is not None,
                    d.challenge_required_by or d.created_at,
                    d.dispute_id,
                )
            )
        else:
            found.sort(key=lambda d: (d.created_at, d.dispute_id), reverse=True)
        return [d.model_dump(mode="json") for d in found[: query.limit]]

    async def dispute(self, merchant_id: str, profile_id: str | None, dispute_id: str) -> dict[str, Any] | None:
        merchant, profile, d = self.disputes_saved.get(dispute_id, (None, None, None))
        if d is None or merchant != merchant_id or (profile_id is not None and profile != profile_id):
            return None
        return d.model_dump(mode="json")


class InMemoryDays:
    """A day's parts as the MongoDB store keeps them: one counter set per part, answered part by part."""

    def __init__(self) -> None:
        self.days: dict[tuple[str, str, date, int], dict[str, int]] = {}

    async def add(
        self, merchant_id: str, profile_id: str, day: date, part: int, delta: Mapping[str, int], tx: Transaction
    ) -> None:
        counters = self.days.setdefault((merchant_id, profile_id, day, part), {})
        for key, value in delta.items():
            counters[key] = counters.get(key, 0) + value

    async def between(self, merchant_id: str, profile_id: str | None, first: date, last: date) -> list[DayFigures]:
        return [
            DayFigures(day, dict(counters))
            for (merchant, profile, day, _), counters in self.days.items()
            if merchant == merchant_id and first <= day <= last and (profile_id is None or profile == profile_id)
        ]

    def summed(self) -> dict[tuple[str, str, date], dict[str, int]]:
        """Each day's figures: the sum of its parts (zeros left out)."""
        total: dict[tuple[str, str, date], dict[str, int]] = {}
        for (merchant, profile, day, _), counters in self.days.items():
            summed = total.setdefault((merchant, profile, day), {})
            for key, value in counters.items():
                summed[key] = summed.get(key, 0) + value
        return {key: {k: v for k, v in counters.items() if v} for key, counters in total.items()}


class RollingBackUnitOfWork(InMemoryUnitOfWork):
    """The in-memory unit of work, with the stores put back as they were when the work raises (as the MongoDB
    transaction would: a view that lost its compare-and-set leaves no event stored either)."""

    def __init__(self, publisher: RecordingPublisher, *stores: object) -> None:
        super().__init__(publisher)
        self._stores = stores

    async def apply(self, work: Any, **kwargs: Any) -> Any:
        saved = [copy.deepcopy(store.__dict__) for store in self._stores]
        try:
            return await super().apply(work, **kwargs)
        except BaseException:
            for store, state in zip(self._stores, saved, strict=True):
                store.__dict__.update(state)
            raise


@dataclass
class Analytics:
    service: Service
    adapters: AnalyticsAdapters
    events: InMemoryEventLog
    views: InMemoryViews
    days: InMemoryDays
    clock: FixedClock
    broker: RabbitBroker | None = None

    async def send(self, queue_name: str, message: Envelope[Any] | bytes) -> None:
        assert self.broker is not None, "send under TestRabbitBroker (the `analytics` fixture)"
        await publish(self.broker, queue_name, message)


def in_memory_analytics(**settings: Any) -> Analytics:
    publisher = RecordingPublisher()
    clock = FixedClock()
    events, views, days = InMemoryEventLog(), InMemoryViews(), InMemoryDays()
    adapters = AnalyticsAdapters(
        unit_of_work=RollingBackUnitOfWork(publisher, events, days),
        publisher=publisher,
        clock=clock,
        events=events,
        views=views,
        days=days,
    )
    service = build_service(AnalyticsSettings(**settings), adapters=adapters)
    return Analytics(service, adapters, events, views, days, clock)
