"""The events API's recover (Svix's): the merchant's failed events of a window delivered again, each on a new round
of its schedule from now, through the delivery path every retry takes (order, slots, breaker, endpoint); at most a
batch a call, oldest first, the next from the answer's cursor. The events of a profile whose endpoint refuses
deliveries now (none, disabled, blocked) stay failed, and the answer says why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog

from recovery_dispatcher import metrics
from recovery_dispatcher.dependencies import EventQueries
from recovery_dispatcher.domain.endpoint import refusal_of
from recovery_dispatcher.domain.event import RECOVER_BATCH, RECOVER_WINDOW, WebhookEvent
from recovery_dispatcher.domain.ids import CLOCK_SKEW
from recovery_dispatcher.handlers.delivery import Delivery
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)


class RecoverRefused(ValueError):
    """A window the recover does not take (the message says why)."""


class RecoverRunning(Exception):
    """This dispatcher is running a recover of the merchant already: one at a time (each reads the merchant's
    records of its window; a merchant sending them in a loop must not load the database for everyone)."""


@dataclass(frozen=True)
class Recovered:
    event_ids: list[str]
    # The last event this call looked at, when failed events of the window follow it.
    next_cursor: str | None
    # The profiles whose endpoint refuses deliveries now (none, disabled, blocked), with why: their failed events
    # stay failed (sent again they would fail again at once).
    refused_profiles: dict[str, str] = field(default_factory=dict)


class FailedEventsRecovery:
    """The recover, one at a time per merchant in this process."""

    def __init__(self, delivery: Delivery, queries: EventQueries) -> None:
        self._delivery = delivery
        self._queries = queries
        self._running: set[str] = set()

    async def __call__(
        self, merchant_id: str, since: datetime, until: datetime | None, profile_id: str | None, cursor: str | None
    ) -> Recovered:
        if merchant_id in self._running:
            raise RecoverRunning(merchant_id)
        self._running.add(merchant_id)
        try:
            return await recover_failed(self._delivery, self._queries, merchant_id, since, until, profile_id, cursor)
        finally:
            self._running.discard(merchant_id)


async def recover_failed(
    delivery: Delivery,
    queries: EventQueries,
    merchant_id: str,
    since: datetime,
    until: datetime | None,
    profile_id: str | None,
    cursor: str | None,
) -> Recovered:
    now = delivery.clock.now()
    # The caller's "14 days ago" was reckoned on its clock, a moment before: the skew the ids allow is left to it.
    if since < now - RECOVER_WINDOW - CLOCK_SKEW:
        raise RecoverRefused(f"since must be within the last {RECOVER_WINDOW.days} days")
    end = min(until or now, now)
    if end < since:
        raise RecoverRefused("until must not be before since")
    found = await queries.failed_since(merchant_id, since, end, profile_id, cursor, RECOVER_BATCH + 1)
    taken = found[:RECOVER_BATCH]
    refused = {}
    for profile in sorted({event.profile_id for event in taken}):
        refusal = refusal_of(await delivery.endpoints.get(profile))
        if refusal is not None:
            refused[profile] = refusal[1]
    recovered = await _reopen([e for e in taken if e.profile_id not in refused], delivery, now)
    metrics.EVENTS_RECOVERED.inc(len(recovered))
    log.info("webhook.recovered", merchant_id=merchant_id, profile_id=profile_id, count=len(recovered), refused=refused)
    return Recovered(recovered, taken[-1].event_id if len(found) > RECOVER_BATCH else None, refused)


async def _reopen(events: list[WebhookEvent], delivery: Delivery, now: datetime) -> list[str]:
    """The batch's events on their new round, each with its timer, in one transaction (one commit and one
    publish for the batch); the ids of those reopened, not of one that moved on meanwhile (another recover took
    it)."""

    async def save(tx: Transaction) -> list[str]:
        reopened = []
        for event in events:
            transition = event.recovered(now)
            if await delivery.events.reopen(event, transition.event, tx.session):
                reopened.append(event.event_id)
                for message in transition.messages:
                    tx.emit(message)
        return reopened

    return await delivery.unit_of_work.apply(save) if events else []
