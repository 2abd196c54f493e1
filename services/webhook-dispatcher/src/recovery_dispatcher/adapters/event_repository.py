"""The webhook event repository on MongoDB: claims (`webhook_claims`) and records (`webhook_events`).

Claims, first records and the writes that finish a delivery go through the record writer's batches (the hot
path: many deliveries share a round trip); the changes that emit messages are written inside the unit of
work's transaction (`update`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_dispatcher.adapters.event_documents import (
    attempt_fields,
    attempt_record,
    changed_fields,
    claim_document,
    claim_of,
    earlier_of,
    event_of,
    initial_document,
)
from recovery_dispatcher.adapters.record_writer import RecordWriter, sequence_key
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.event import Claim, DuplicateEvent, EarlierEvent, WebhookEvent
from recovery_dispatcher.domain.ids import record_key
from recovery_dispatcher.domain.status import FINAL_STATUSES, EventStatus
from recovery_runtime.mongo import IndexSpec

log = structlog.get_logger(__name__)

INDEXES = [
    # No secondary index on the dispatcher's hot collections (each one costs every insert); every lookup goes
    # by `_id`:
    # - a record's `_id` is `<merchant_id>/<event_id>` and event ids are time-ordered (`evt_` + milliseconds +
    #   hash): one merchant's events, newest first, are one `_id` range read backwards (the events list);
    # - an attempt's record id starts with its initial event's (`retry_event_id`): one `_id` range;
    # - claims (`webhook_claims`) are keyed `<payment_id>#<n>`: a payment's events are one `_id` range, and
    #   the claims need no unique index besides `_id` (record_writer.py says how duplicates are settled).
    # Indexes of earlier versions, dropped at start-up.
    IndexSpec("webhook_events", [], "event_merchant", retired=True),
    IndexSpec("webhook_claims", [], "claim_payment_sequence", retired=True),
    IndexSpec("webhook_events", [], "event_attempts", retired=True),
    IndexSpec("webhook_events", [], "event_payment", retired=True),
]


def payment_claims(payment_id: str) -> dict[str, str]:
    """The `_id` range of a payment's claims ("<payment>#<n>"; "$" follows "#")."""
    return {"$gte": f"{payment_id}#", "$lt": f"{payment_id}$"}


def _retry_hex() -> str:
    return secrets.token_hex(8)


class MongoEventRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], writer: RecordWriter) -> None:
        self.records = db["webhook_events"]
        self.claims = db["webhook_claims"]
        self._writer = writer

    async def close(self) -> None:
        await self._writer.close()

    async def claim(self, event: WebhookEvent) -> WebhookEvent:
        """Claim a new event, numbered within its payment. Raises DuplicateEvent when it is claimed already (by
        anyone): the claim decides, also between dispatchers racing on the same event."""
        doc = claim_document(event)
        await self._writer.claim(doc)
        return event.numbered(doc["sequence"])

    async def claim_of(self, payment_id: str, idempotent_id: str) -> Claim | None:
        doc = await self.claims.find_one({"_id": payment_claims(payment_id), "idempotent_event_id": idempotent_id})
        return None if doc is None else claim_of(doc)

    async def claimed(self, payment_id: str, idempotent_ids: list[str]) -> set[str]:
        query = {"_id": payment_claims(payment_id), "idempotent_event_id": {"$in": idempotent_ids}}
        return {doc["idempotent_event_id"] async for doc in self.claims.find(query, {"idempotent_event_id": 1})}

    async def take_claim(self, claim: Claim, lease_until: datetime, owner: str) -> bool:
        """Compare-and-set the lease of a claim whose event is not recorded (the caller checked that its holder
        is gone): only one dispatcher wins, the one that saw the current lease."""
        result = await self.claims.update_one(
            {"_id": claim.key, "lease_until": claim.lease_until},
            {"$set": {"lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def load(self, merchant_id: str, event_id: str) -> WebhookEvent | None:
        """A merchant's event by its initial event id (another merchant's event ids are unknown here)."""
        doc = await self._record(merchant_id, event_id)
        return None if doc is None else event_of(doc)

    async def load_initial(self, merchant_id: str, event_id: str) -> WebhookEvent | None:
        """The event of a merchant's record, initial or of a later attempt."""
        doc = await self._record(merchant_id, event_id)
        if doc is not None and doc["initial_attempt_id"] != doc["event_id"]:
            doc = await self._record(merchant_id, doc["initial_attempt_id"])
        return None if doc is None else event_of(doc)

    async def _record(self, merchant_id: str, event_id: str) -> dict[str, Any] | None:
        try:
            key = record_key(merchant_id, event_id)
        except ValueError:
            return None
        return await self.records.find_one({"_id": key})

    async def take(
        self,
        event: WebhookEvent,
        from_statuses: tuple[EventStatus, ...],
        now: datetime,
        lease_until: datetime,
        owner: str,
    ) -> bool:
        """Compare-and-set the recorded event into `delivering` for this owner (one dispatcher at a time): from
        one of `from_statuses`, or from `delivering` whose lease ran out; and only at the retry `event` was loaded
        at. A copy of a `webhook.deliver` loaded just before another dispatcher's delivery settled (the next retry
        then scheduled, `retry_index` moved on) would otherwise take that next retry before it is due."""
        result = await self.records.update_one(
            {
                "_id": event.key,
                "retry_index": event.retry_index,
                "$or": [
                    {"status": {"$in": [status.value for status in from_statuses]}},
                    {"status": EventStatus.DELIVERING.value, "lease_until": {"$lt": now}},
                ],
            },
            {"$set": {"status": EventStatus.DELIVERING.value, "lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def earlier_unfinished(self, event: WebhookEvent) -> EarlierEvent | None:
        """The earliest initial event of the same payment, numbered before this one, that is not delivered or
        failed yet (ordering): one recorded and pending, or one claimed whose record is not written yet (its
        first attempt in flight). Two reads by unique keys: the payment's claims, then their records."""
        keys = [sequence_key(event.payment_id, n) for n in range(1, event.sequence)]
        claims = await self.claims.find({"_id": {"$in": keys}}, {"event_id": 1, "sequence": 1}).to_list(None)
        if not claims:
            return None
        records = {
            doc["event_id"]: doc
            for doc in await self.records.find(
                {"_id": {"$in": [record_key(event.merchant_id, c["event_id"]) for c in claims]}},
                {"event_id": 1, "status": 1, "sequence": 1, "next_retry_at": 1},
            ).to_list(None)
        }
        for claim in sorted(claims, key=lambda c: int(c.get("sequence") or 0)):
            record = records.get(claim["event_id"])
            if record is None:
                return EarlierEvent(claim["event_id"], claim.get("sequence"), None)
            if record.get("status") not in FINAL_STATUSES:
                return earlier_of(record)
        return None

    async def insert(self, event: WebhookEvent) -> None:
        """Record a claimed event before a path that updates it (hold, failure). Raises DuplicateEvent when a
        dispatcher whose claim lease had run out recorded it meanwhile."""
        await self._writer.insert(initial_document(event))

    async def update(self, before: WebhookEvent, after: WebhookEvent, session: AsyncClientSession | None) -> bool:
        """Write a change of a recorded event (inside the unit of work's transaction: `session`), unless it was
        delivered meanwhile (a merchant's manual retry while this delivery was in flight): False then, and nothing
        written."""
        fields = changed_fields(before, after)
        if not fields:
            return True
        result = await self.records.update_one(
            {"_id": after.key, "status": {"$ne": EventStatus.DELIVERED.value}}, {"$set": fields}, session=session
        )
        return result.matched_count == 1

    async def reopen(self, before: WebhookEvent, after: WebhookEvent, session: AsyncClientSession | None) -> bool:
        """Write a failed event's change if it is still failed (two recovers of one event: one reopens it)."""
        result = await self.records.update_one(
            {"_id": after.key, "status": EventStatus.FAILED.value},
            {"$set": changed_fields(before, after)},
            session=session,
        )
        return result.modified_count == 1

    async def record_attempts(
        self, before: WebhookEvent, after: WebhookEvent, results: Sequence[DeliveryResult], *, recorded: bool
    ) -> None:
        """Record one delivery's attempts and the event's state after them. The first attempt of an event fills
        its initial record; any other is a record of its own. `recorded`: the initial record is stored (one
        batched update), else it is written whole with the first attempt (one insert on the fast path, batched
        with other deliveries')."""
        first: dict[str, Any] = {}
        later = []
        for number, result in enumerate(results):
            if number == 0 and not before.attempted:
                # The initial record holds the body once (`body`); its request is read back with it.
                first = attempt_fields(after.body, result, with_body=False)
            else:
                later.append(
                    self._writer.insert(
                        attempt_record(after, result, WebhookDeliveryAttempt.AUTOMATIC_RETRY, _retry_hex())
                    )
                )
        if recorded:
            await asyncio.gather(*later, self._writer.update(after.key, {**first, **changed_fields(before, after)}))
            return
        record = initial_document(after)
        record.update(first)
        record["is_webhook_notified"] = after.notified
        await self._insert_first(record, later, after, results[0])

    async def _insert_first(
        self, record: dict[str, Any], later: Sequence[Awaitable[None]], event: WebhookEvent, first: DeliveryResult
    ) -> None:
        """Insert a claimed event's initial record with its first attempt, beside its later attempts' records."""
        outcomes: list[Any]
        if not later:
            # The fast path: one write, no task of its own.
            outcomes = [None]
            try:
                await self._writer.insert(record)
            except Exception as error:
                outcomes[0] = error
        else:
            outcomes = await asyncio.gather(self._writer.insert(record), *later, return_exceptions=True)
        for outcome in outcomes[1:]:
            if isinstance(outcome, BaseException):
                raise outcome
        if isinstance(outcomes[0], DuplicateEvent):
            # A dispatcher whose claim lease had run out recorded the event meanwhile: ours is a retry record.
            log.warning("webhook.record_exists", event_id=event.event_id)
            await self._writer.insert(
                attempt_record(event, first, WebhookDeliveryAttempt.AUTOMATIC_RETRY, _retry_hex())
            )
        elif isinstance(outcomes[0], BaseException):
            raise outcomes[0]

    async def record_manual_attempt(
        self, before: WebhookEvent, after: WebhookEvent, result: DeliveryResult
    ) -> dict[str, Any]:
        """Record a merchant's manual retry (and the event delivered, when it succeeded); returns its record."""
        record = attempt_record(after, result, WebhookDeliveryAttempt.MANUAL_RETRY, _retry_hex())
        await self._writer.insert(record)
        fields = changed_fields(before, after)
        if fields:
            await self._writer.update(after.key, fields)
        return record
