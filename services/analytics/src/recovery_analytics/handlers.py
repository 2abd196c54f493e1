"""The projection's one handler: store the event, fold the payment's events again, save the view and move its
day's figures by the difference, all in one transaction.

The event log's unique message id is the consumer's idempotency record (a duplicate changes nothing); the fold
is order-independent (domain/view.py), so an event that arrives late is simply part of the next fold.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import structlog

from recovery_analytics.dependencies import AnalyticsAdapters, ConcurrentUpdate
from recovery_analytics.domain.figures import difference
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import PAYMENT_EVENTS, payment_of, project
from recovery_contracts.envelope import Envelope
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)

# Saves lost to another instance folding the same payment, before the message goes back to the broker.
MAX_TRIES = 5
# The most documents a day is split over (adapters/days.py): more transactions in flight than this wait for a part.
PARTS = 64


class DayParts:
    """The day document each transaction of this process moves: `lease()` gives a part number no other transaction
    of the process holds until it is given back, the lowest free one first (a quiet day is written on few
    documents); more than `parts` leases at once wait for one to be given back.

    A day's figures are the sum of its parts, so which part takes a payment's change does not matter; what matters
    is that two transactions in flight never `$inc` the same document, for concurrent transactions on one document
    abort each other. The numbers start at a random offset per process: instances lease independently, and another
    instance's transaction on the same part is a conflict (an abort and a retry), never a wrong figure."""

    def __init__(self, parts: int = PARTS, offset: int | None = None) -> None:
        self._parts = parts
        self._offset = random.randrange(parts) if offset is None else offset
        self._free = list(range(parts))
        self._available = asyncio.Semaphore(parts)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[int]:
        await self._available.acquire()
        taken = heapq.heappop(self._free)
        try:
            yield (self._offset + taken) % self._parts
        finally:
            heapq.heappush(self._free, taken)
            self._available.release()


async def project_event(
    adapters: AnalyticsAdapters, parts: DayParts, envelope: Envelope[Any], queue: ConsumerQueue
) -> None:
    payment_id = payment_of(envelope)
    # The part is held until the transaction has committed or aborted, retries included.
    async with parts.lease() as part:
        for attempt in range(1, MAX_TRIES + 1):
            fold = partial(_fold, adapters, envelope, payment_id, part, first_try=attempt == 1)
            try:
                await adapters.unit_of_work.apply(fold, inbox=False)
                return
            except ConcurrentUpdate:
                if attempt == MAX_TRIES:
                    raise
                log.info("analytics.view_changed_meanwhile", attempt=attempt)


async def _fold(
    adapters: AnalyticsAdapters,
    envelope: Envelope[Any],
    payment_id: str | None,
    part: int,
    tx: Transaction,
    *,
    first_try: bool,
) -> None:
    if not await adapters.events.append(envelope, payment_id, tx):
        raise AlreadyApplied(envelope.message_id)
    if payment_id is None or envelope.type not in PAYMENT_EVENTS:
        return  # kept in the log (a profile's endpoint disabled), part of no payment's view
    events = await adapters.events.of_payment(payment_id, tx)
    view = project(payment_id, events)
    # Every stored event of a payment was saved in the same transaction as its view: when this event is the only
    # one, there is no view to read (a view saved meanwhile by another instance makes the insert fail, and the
    # next try reads it).
    alone = first_try and [e.message_id for e in events] == [envelope.message_id]
    stored = None if alone else await adapters.views.get(payment_id, tx)
    record = ViewRecord.of(view, version=(stored.version if stored is not None else 0) + 1)
    await adapters.views.save(record, tx)
    await move_figures(adapters, stored, record, part, tx)


async def move_figures(
    adapters: AnalyticsAdapters, before: ViewRecord | None, after: ViewRecord, part: int, tx: Transaction
) -> None:
    """Move the days from `before`'s contribution to `after`'s (a payment's day and profile never change once
    known, but a view first seen without its request contributes nothing and has no day)."""
    if before is not None and before.day is not None and before.day != after.day:
        await adapters.days.add(
            _of(before.merchant_id),
            _of(before.profile_id),
            before.day,
            part,
            difference({}, before.contribution),
            tx,
        )
        before = None
    if after.day is None:
        return
    delta = difference(after.contribution, before.contribution if before is not None else {})
    if delta:
        await adapters.days.add(_of(after.merchant_id), _of(after.profile_id), after.day, part, delta, tx)


def _of(value: str | None) -> str:
    if value is None:
        raise ValueError("a view with a day has a merchant and a profile")
    return value
