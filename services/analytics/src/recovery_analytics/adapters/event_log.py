"""`analytics_events`: every event the projection consumed, by message id (its idempotency record and the history
a rebuild folds again). Kept without expiry: it is the read side's source of truth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import read_message
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction

COLLECTION = "analytics_events"
INDEXES = [IndexSpec(COLLECTION, [("payment_id", ASCENDING), ("occurred_at", ASCENDING)], "payment_occurred")]


def _document(envelope: Envelope[Any], payment_id: str | None) -> dict[str, Any]:
    return {
        "_id": envelope.message_id,
        "payment_id": payment_id,
        "merchant_id": envelope.merchant_id,
        "type": envelope.type.value,
        "occurred_at": envelope.occurred_at,
        "envelope": envelope.model_dump(mode="json"),
    }


def _envelope(doc: dict[str, Any]) -> Envelope[Any]:
    return read_message(MessageType(doc["type"]), doc["envelope"])


class MongoEventLog:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._events = db[COLLECTION]

    async def append(self, envelope: Envelope[Any], payment_id: str | None, tx: Transaction) -> bool:
        try:
            await self._events.insert_one(_document(envelope, payment_id), session=tx.session)
        except DuplicateKeyError:
            return False
        return True

    async def of_payment(self, payment_id: str, tx: Transaction) -> list[Envelope[Any]]:
        docs = await self._events.find({"payment_id": payment_id}, session=tx.session).to_list(None)
        return [_envelope(doc) for doc in docs]

    async def by_payment(self) -> AsyncIterator[tuple[str, list[Envelope[Any]]]]:
        current: str | None = None
        batch: list[Envelope[Any]] = []
        cursor = self._events.find({"payment_id": {"$ne": None}}).sort([("payment_id", 1), ("occurred_at", 1)])
        async for doc in cursor:
            if doc["payment_id"] != current:
                if current is not None:
                    yield current, batch
                current, batch = doc["payment_id"], []
            batch.append(_envelope(doc))
        if current is not None:
            yield current, batch
