"""The executor's collections: attempt records and its projection of payment connector credentials."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.messages import ConnectorAccountUpdated, RecoveryUpdated
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import OUTBOX_FIELD

INDEXES = [
    IndexSpec("attempts", [("payment_id", ASCENDING), ("attempt_number", ASCENDING)], "attempt_unique", unique=True),
    IndexSpec("attempts", [("status", ASCENDING), ("started_at", ASCENDING)], "attempt_status"),
    IndexSpec("record_backs", [("status", ASCENDING)], "record_back_status"),
]


class AttemptRepository:
    """One record per planned attempt, written before the connector call: the guard against a second charge."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._attempts = db["attempts"]
        # Settled attempts embed their outcome messages until published (MessageStore.write).
        self.collection = self._attempts

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

    async def mark_unknown(
        self,
        attempt_key: str,
        owner: str,
        connector_transaction_id: str | None,
        next_sync_at: Any,
        session: AsyncClientSession,
    ) -> bool:
        """The call ended without a verdict: PSYNC owns the attempt from now on (a timer brings it back)."""
        fields: dict[str, Any] = {"status": "unknown", "next_sync_at": next_sync_at}
        if connector_transaction_id:
            fields["connector_transaction_id"] = connector_transaction_id
        result = await self._attempts.update_one(
            {"_id": attempt_key, "status": "charging", "owner": owner}, {"$set": fields}, session=session
        )
        return result.modified_count == 1

    async def reopen_skipped(self, attempt_key: str, attempt_id: str, now: Any, owner: str) -> bool:
        """A refused attempt (nothing was sent to the connector) planned again under a new attempt id."""
        result = await self._attempts.update_one(
            {"_id": attempt_key, "status": "skipped", "attempt_id": {"$ne": attempt_id}},
            {"$set": {"status": "charging", "attempt_id": attempt_id, "started_at": now, "owner": owner}},
        )
        return result.modified_count == 1

    async def succeeded_for(self, payment_id: str) -> dict[str, Any] | None:
        return await self._attempts.find_one({"payment_id": payment_id, "status": "succeeded"})

    async def settle(
        self,
        attempt_key: str,
        owner: str,
        fields: dict[str, Any],
        session: AsyncClientSession | None,
        outbox: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Record the final outcome, only while this executor still holds the attempt (compare-and-set on status
        and owner); `outbox`: the messages it emits, embedded in the same write."""
        update: dict[str, Any] = {"$set": fields}
        if outbox:
            update["$push"] = {OUTBOX_FIELD: {"$each": outbox}}
        result = await self._attempts.update_one(
            {"_id": attempt_key, "status": "charging", "owner": owner}, update, session=session
        )
        return result.modified_count == 1

    async def get(self, attempt_key: str) -> dict[str, Any] | None:
        return await self._attempts.find_one({"_id": attempt_key})


class CredentialRepository:
    """Projection of `connector-account.updated`: only newer versions apply."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], cache_seconds: float = 0.0) -> None:
        self._accounts = db["connector_credentials"]
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._loading: dict[str, asyncio.Task[dict[str, Any] | None]] = {}

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
        self._cache.pop(update.connector_account_id, None)
        await self._accounts.update_one(
            {"_id": update.connector_account_id}, {"$set": doc}, upsert=True, session=session
        )
        return True

    async def get(self, connector_account_id: str) -> dict[str, Any] | None:
        """Kept per process for `cache_seconds` (read before every charge; concurrent misses share one read); an
        absent account is not kept."""
        cached = self._cache.get(connector_account_id)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        loading = self._loading.get(connector_account_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(connector_account_id))
            self._loading[connector_account_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(connector_account_id, None))
        return await asyncio.shield(loading)

    async def _load(self, connector_account_id: str) -> dict[str, Any] | None:
        doc = await self._accounts.find_one({"_id": connector_account_id})
        if doc is not None and self._cache_seconds > 0:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[connector_account_id] = (time.monotonic() + self._cache_seconds, doc)
        return doc


class PaymentStateRepository:
    """Projection of `recovery.updated`: whether the invoice may still be charged (cancelled, paid elsewhere or a
    payment in progress at the billing system means no). Only newer versions apply."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._states = db["payment_states"]

    async def apply(self, update: RecoveryUpdated, now: Any, session: AsyncClientSession) -> bool:
        payment_id = update.payment.payment_id
        current = await self._states.find_one({"_id": payment_id}, {"version": 1}, session=session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        doc = {
            "merchant_id": update.payment.merchant_id,
            "status": update.intent_status.value,
            "action": update.action,
            "version": update.version,
            "updated_at": now,
        }
        await self._states.update_one({"_id": payment_id}, {"$set": doc}, upsert=True, session=session)
        return True

    async def get(self, payment_id: str) -> dict[str, Any] | None:
        return await self._states.find_one({"_id": payment_id})

    async def state_and_success(self, payment_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The two facts the charge guard needs, in one round trip: this payment's state projection and a
        succeeded attempt of it, if any (`$unionWith` the attempts: MongoDB 4.4+)."""
        docs = await (
            await self._states.aggregate(
                [
                    {"$match": {"_id": payment_id}},
                    {"$project": {"status": 1}},
                    {
                        "$unionWith": {
                            "coll": "attempts",
                            "pipeline": [
                                {"$match": {"payment_id": payment_id, "status": "succeeded"}},
                                {"$limit": 1},
                                {"$project": {"attempt_number": 1, "status": 1}},
                            ],
                        }
                    },
                ]
            )
        ).to_list(None)
        state = next((d for d in docs if d["_id"] == payment_id), None)
        paid = next((d for d in docs if d["_id"] != payment_id and "attempt_number" in d), None)
        return state, paid


class RecordBackRepository:
    """One record per payment: whether the billing connector accepted the record back, and the tries so far."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._records = db["record_backs"]

    async def get(self, payment_id: str) -> dict[str, Any] | None:
        return await self._records.find_one({"_id": payment_id})

    async def record_try(
        self, payment_id: str, fields: dict[str, Any], try_record: dict[str, Any], session: AsyncClientSession
    ) -> None:
        await self._records.update_one(
            {"_id": payment_id}, {"$set": fields, "$push": {"tries": try_record}}, upsert=True, session=session
        )
