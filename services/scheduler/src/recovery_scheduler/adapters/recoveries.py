"""The scheduler's record of each recovery: snapshot, attempts, the plan and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import not_applied, push_applied

INDEXES = [
    IndexSpec("recoveries", [("merchant_id", ASCENDING), ("status", ASCENDING)], "recovery_merchant_status"),
    IndexSpec("recoveries", [("attempts.token", ASCENDING)], "recovery_attempt_token"),
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

    async def save(self, doc: dict[str, Any], session: AsyncClientSession | None) -> None:
        """Compare-and-set on `version`: the write applies only to the state it was computed from."""
        expected = doc["version"]
        replacement = {**doc, "version": expected + 1}
        result = await self._recoveries.replace_one(
            {"_id": doc["_id"], "version": expected}, replacement, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(doc["_id"])
        doc["version"] = expected + 1

    def timers_collection(self) -> AsyncCollection[dict[str, Any]]:
        """The `timers` collection (TimerRepository's), for one use: inserting the timer of a recovery's first plan
        inside the transaction that inserts the recovery, without TimerRepository.add's look-up first (no timer of
        a recovery that does not exist yet can exist). Everything else about timers goes through TimerRepository."""
        return self._recoveries.database["timers"]

    async def record_applied(self, payment_id: str, key: str) -> bool:
        """Record a consumed message that changes nothing; False when it was recorded before (a duplicate)."""
        result = await self._recoveries.update_one(
            {"_id": payment_id, **not_applied(key)}, {"$push": push_applied(key)}
        )
        return result.matched_count == 1

    async def of_merchant(self, merchant_id: str, payment_id: str) -> dict[str, Any] | None:
        """Scoped by merchant: another merchant's payment id reads as absent."""
        return await self._recoveries.find_one({"_id": payment_id, "merchant_id": merchant_id})

    async def other_attempts_at(
        self, tokens: list[str], exclude_payment_id: str, since: datetime, session: AsyncClientSession | None = None
    ) -> dict[str, list[datetime]]:
        """This system's attempts on the same cards by other recoveries: they spend the same network budget."""
        found: dict[str, list[datetime]] = {token: [] for token in tokens}
        cursor = self._recoveries.find(
            {"attempts.token": {"$in": tokens}, "_id": {"$ne": exclude_payment_id}},
            {"attempts.token": 1, "attempts.at": 1},
            session=session,
        )
        async for doc in cursor:
            for attempt in doc.get("attempts", []):
                if attempt.get("token") in found and attempt.get("at") and attempt["at"] >= since:
                    found[attempt["token"]].append(attempt["at"])
        return found
