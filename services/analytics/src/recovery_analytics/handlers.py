"""The projection's one handler: store the event, fold the payment's events again, save the view and move its
day's figures by the difference, all in one transaction.

The event log's unique message id is the consumer's idempotency record (a duplicate changes nothing); the fold
is order-independent (domain/view.py), so an event that arrives late is simply part of the next fold.
"""

from __future__ import annotations

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


async def project_event(adapters: AnalyticsAdapters, envelope: Envelope[Any], queue: ConsumerQueue) -> None:
    payment_id = payment_of(envelope)
    for attempt in range(1, MAX_TRIES + 1):
        try:
            await adapters.unit_of_work.apply(lambda tx: _fold(adapters, envelope, payment_id, tx), inbox=False)
            return
        except ConcurrentUpdate:
            if attempt == MAX_TRIES:
                raise
            log.info("analytics.view_changed_meanwhile", attempt=attempt)


async def _fold(adapters: AnalyticsAdapters, envelope: Envelope[Any], payment_id: str | None, tx: Transaction) -> None:
    if not await adapters.events.append(envelope, payment_id, tx):
        raise AlreadyApplied(envelope.message_id)
    if payment_id is None or envelope.type not in PAYMENT_EVENTS:
        return  # kept in the log (a profile's endpoint disabled), part of no payment's view
    view = project(payment_id, await adapters.events.of_payment(payment_id, tx))
    stored = await adapters.views.get(payment_id, tx)
    record = ViewRecord.of(view, version=(stored.version if stored is not None else 0) + 1)
    await adapters.views.save(record, tx)
    await move_figures(adapters, stored, record, tx)


async def move_figures(
    adapters: AnalyticsAdapters, before: ViewRecord | None, after: ViewRecord, tx: Transaction
) -> None:
    """Move the days from `before`'s contribution to `after`'s (a payment's day and profile never change once
    known, but a view first seen without its request contributes nothing and has no day)."""
    if before is not None and before.day is not None and before.day != after.day:
        await adapters.days.add(
            _of(before.merchant_id),
            _of(before.profile_id),
            before.day,
            before.payment_id,
            difference({}, before.contribution),
            tx,
        )
        before = None
    if after.day is None:
        return
    delta = difference(after.contribution, before.contribution if before is not None else {})
    if delta:
        await adapters.days.add(_of(after.merchant_id), _of(after.profile_id), after.day, after.payment_id, delta, tx)


def _of(value: str | None) -> str:
    if value is None:
        raise ValueError("a view with a day has a merchant and a profile")
    return value
