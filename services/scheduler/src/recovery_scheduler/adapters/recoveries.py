"""The scheduler's record of each recovery: snapshot, attempts, the plan and its history."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_runtime.mongo import IndexSpec

INDEXES = [
    IndexSpec("recoveries", [("merchant_id", ASCENDING), ("status", ASCENDING)], "recovery_merchant_status"),
]


class ConcurrentUpdate(Exception):
    """Another message changed the recovery first; the message is retried on the newer state."""


class RecoveryRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._recoveries = db["recoveries"]

    async def get(self, payment_id: str, session: AsyncClientSession | None = None) -> dict[str, Any] | None:
        return await self._recoveries.find_one({"_id": payment_id}, session=session)

    async def insert(self, doc: dict[str, Any], session: AsyncClientSession) -> None:
        await self._recoveries.insert_one(doc, session=session)

    async def save(self, doc: dict[str, Any], session: AsyncClientSession) -> None:
        """Compare-and-set on `version`: the write applies only to the state it was computed from."""
        expected = doc["version"]
        replacement = {**doc, "version": expected + 1}
        result = await self._recoveries.replace_one(
            {"_id": doc["_id"], "version": expected}, replacement, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(doc["_id"])
        doc["version"] = expected + 1
