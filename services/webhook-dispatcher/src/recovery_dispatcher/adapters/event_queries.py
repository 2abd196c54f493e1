"""What the events API reads: a merchant's initial records, an event's attempts, a payment's events (all by
`_id` ranges: the records have no secondary index)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.api.events import EVENTS_COUNT_CAP
from recovery_dispatcher.adapters.event_documents import event_of
from recovery_dispatcher.adapters.event_repository import payment_claims
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.ids import ATTEMPTS_END, KEY_SEPARATOR, checked_merchant_id, millis, record_key
from recovery_dispatcher.domain.status import EventStatus


def merchant_range(merchant_id: str, after: datetime | None = None, before: datetime | None = None) -> dict[str, str]:
    """The `_id` range of a merchant's records, optionally of those created in [after, before] (to the
    millisecond; the caller filters `created_at` exactly)."""
    low = f"{checked_merchant_id(merchant_id)}{KEY_SEPARATOR}"
    high = f"{merchant_id}0"
    if after is not None:
        low += f"evt_{max(millis(after), 0):012x}"
    if before is not None:
        high = f"{merchant_id}{KEY_SEPARATOR}evt_{max(millis(before) + 1, 0):012x}"
    return {"$gte": low, "$lt": high}


def attempts_range(initial_key: str) -> dict[str, str]:
    return {"$gte": initial_key, "$lt": initial_key + ATTEMPTS_END}


class MongoEventQueries:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._records = db["webhook_events"]
        self._claims = db["webhook_claims"]

    async def event_ids_of_payment(self, payment_id: str) -> list[str]:
        """The ids of the initial events raised for a payment: its claims, one `_id` range."""
        cursor = self._claims.find({"_id": payment_claims(payment_id)}, {"event_id": 1})
        return [doc["event_id"] async for doc in cursor]

    async def attempts_of(self, merchant_id: str, initial_event_id: str) -> list[dict[str, Any]]:
        """The records of an event's attempts, the initial first (its key is the range's start)."""
        try:
            key = record_key(merchant_id, initial_event_id)
        except ValueError:
            return []
        return await self._records.find({"_id": attempts_range(key)}).sort("created_at", ASCENDING).to_list(None)

    async def list_initial(
        self,
        merchant_id: str,
        query: dict[str, Any],
        offset: int,
        limit: int,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
        below: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A merchant's initial events matching `query`, newest first: its `_id` range read backwards, bounded
        by `after` and `before` to the millisecond (`query` filters `created_at` exactly), or the records of
        `query`'s `_id` list (keys of this merchant's records); the page starts below the key `below` (a
        cursor: the last key of the previous page). The count is of every match (the cursor aside), up to
        EVENTS_COUNT_CAP: a count costs at most that many records, a page its own (and one more, read to tell
        whether any record follows the page: the third value)."""
        query = {"delivery_attempt": "initial_attempt", **query}
        if "_id" not in query:
            query["_id"] = merchant_range(merchant_id, after, before)
        total = await self._records.count_documents(query, limit=EVENTS_COUNT_CAP)
        if below is not None:
            query["_id"] = {**query["_id"], "$lt": min(below, query["_id"].get("$lt", below))}
        docs = (
            await self._records.find(query, {"body": 0, "request": 0, "response": 0})
            .sort("_id", DESCENDING)
            .skip(offset)
            .limit(limit + 1)
            .to_list(None)
        )
        return docs[:limit], total, len(docs) > limit

    async def failed_since(
        self, merchant_id: str, since: datetime, until: datetime, profile_id: str | None, after: str | None, limit: int
    ) -> list[WebhookEvent]:
        """On the merchant's `_id` range (time-ordered), oldest first: its initial records that failed."""
        query: dict[str, Any] = {
            "_id": merchant_range(merchant_id, since, until),
            "delivery_attempt": "initial_attempt",
            "status": EventStatus.FAILED.value,
            "created_at": {"$gte": since, "$lte": until},
        }
        if after is not None:
            query["_id"]["$gt"] = record_key(merchant_id, after)
        if profile_id is not None:
            query["business_profile_id"] = profile_id
        docs = await self._records.find(query).sort("_id", ASCENDING).limit(limit).to_list(None)
        return [event_of(doc) for doc in docs]
