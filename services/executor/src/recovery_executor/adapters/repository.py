"""The executor's collections: attempt records and its projection of payment connector credentials."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.messages import ConnectorAccountUpdated
from recovery_runtime.mongo import IndexSpec

INDEXES = [
    IndexSpec("attempts", [("payment_id", ASCENDING), ("attempt_number", ASCENDING)], "attempt_unique", unique=True),
    IndexSpec("attempts", [("status", ASCENDING), ("started_at", ASCENDING)], "attempt_status"),
]


class AttemptRepository:
    """One record per planned attempt, written before the connector call: the guard against a second charge."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._attempts = db["attempts"]

    async def claim(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Insert the attempt; None when it is new, else the record that already exists."""
        try:
            await self._attempts.insert_one(record)
            return None
        except DuplicateKeyError:
            return await self._attempts.find_one({"_id": record["_id"]})

    async def take_over(self, attempt_key: str, seen_started_at: Any, now: Any, owner: str) -> bool:
        """Take an abandoned or unknown attempt: compare-and-set on the start time we saw."""
        result = await self._attempts.update_one(
            {"_id": attempt_key, "status": {"$in": ["charging", "unknown"]}, "started_at": seen_started_at},
            {"$set": {"status": "charging", "started_at": now, "owner": owner}, "$inc": {"resumptions": 1}},
        )
        return result.modified_count == 1

    async def mark_unknown(self, attempt_key: str, owner: str, connector_transaction_id: str | None) -> None:
        await self._attempts.update_one(
            {"_id": attempt_key, "status": "charging", "owner": owner},
            {"$set": {"status": "unknown", "connector_transaction_id": connector_transaction_id}},
        )

    async def settle(
        self,
        attempt_key: str,
        owner: str,
        fields: dict[str, Any],
        session: AsyncClientSession,
    ) -> bool:
        """Record the final outcome, only while this executor still holds the attempt."""
        result = await self._attempts.update_one(
            {"_id": attempt_key, "status": "charging", "owner": owner}, {"$set": fields}, session=session
        )
        return result.modified_count == 1

    async def get(self, attempt_key: str) -> dict[str, Any] | None:
        return await self._attempts.find_one({"_id": attempt_key})


class CredentialRepository:
    """Projection of `connector-account.updated`: only newer versions apply."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._accounts = db["connector_credentials"]

    async def apply(self, update: ConnectorAccountUpdated, session: AsyncClientSession) -> bool:
        doc = {
            "merchant_id": update.merchant_id,
            "profile_id": update.profile_id,
            "connector_type": update.connector_type,
            "connector_name": update.connector_name,
            "api_key": update.api_key,
            "disabled": update.disabled,
            "version": update.version,
        }
        # Read then write inside the caller's transaction: a concurrent writer makes it retry (write conflict),
        # and a duplicate-key error would abort the whole transaction.
        current = await self._accounts.find_one({"_id": update.connector_account_id}, {"version": 1}, session=session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        await self._accounts.update_one(
            {"_id": update.connector_account_id}, {"$set": doc}, upsert=True, session=session
        )
        return True

    async def get(self, connector_account_id: str) -> dict[str, Any] | None:
        return await self._accounts.find_one({"_id": connector_account_id})
