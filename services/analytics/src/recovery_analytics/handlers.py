"""The projection's one handler: store the event, fold it with the payment's earlier events (carried by its stored
view), save the view and move its day's figures by the difference, all in one transaction.

The event log's unique message id is the consumer's idempotency record (a duplicate changes nothing); the fold
is order-independent (domain/view.py), so an event that arrives late is simply part of the next fold.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import structlog

from recovery_analytics.dependencies import AnalyticsAdapters, ConcurrentUpdate
from recovery_analytics.domain.figures import difference
from recovery_analytics.domain.payment_events import PAYMENT_EVENTS, payment_of
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_contracts.envelope import Envelope, MessageType
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)

# Saves lost to another instance folding the same payment, before the message goes back to the broker.
MAX_TRIES = 5
# The events that open a payment's story: their first try saves its view without reading one (`_fold`).
OPENING = frozenset({MessageType.RECOVERY_SCHEDULED})
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
    # A payment's request is nearly always its first event: its first try takes no view to be stored and saves
    # one without reading (an insert, which a stored view makes fail: the next try reads it).
    stored = None if first_try and envelope.type in OPENING else await adapters.views.get(payment_id, tx)
    events = [*(await _earlier(adapters, payment_id, stored, tx)), envelope]
    record = ViewRecord.of(
        project(payment_id, events), version=(stored.version if stored is not None else 0) + 1, events=events
    )
    await adapters.views.save(record, tx)
    await move_figures(adapters, stored, record, part, tx)


async def _earlier(
    adapters: AnalyticsAdapters, payment_id: str, stored: ViewRecord | None, tx: Transaction
) -> Sequence[Envelope[Any]]:
    """The payment's events folded before this one. Each was stored in the same transaction as the view folded
    from it, so no view means no earlier event, and a view carries them all unless it has too many or was saved
    before views carried them: then they are read from the event log (this event with them, once more)."""
    if stored is None:
        return ()
    if stored.history is not None:
        return stored.history
    return await adapters.events.of_payment(payment_id, tx)


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
