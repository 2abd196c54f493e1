"""The dispatcher's collections: webhook event records (Hyperswitch's shape) and the endpoint projection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import ProfileUpdated
from recovery_runtime.mongo import IndexSpec

INDEXES = [
    IndexSpec("webhook_events", [("idempotent_event_id", ASCENDING)], "event_idempotent", unique=True),
    IndexSpec("webhook_events", [("initial_attempt_id", ASCENDING), ("created_at", ASCENDING)], "event_attempts"),
    IndexSpec("webhook_events", [("merchant_id", ASCENDING), ("created_at", DESCENDING)], "event_merchant"),
    IndexSpec("webhook_events", [("payment_id", ASCENDING)], "event_payment"),
]


class EventStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._events = db["webhook_events"]

    async def find_initial(
        self, idempotent_event_id: str, session: AsyncClientSession | None = None
    ) -> dict[str, Any] | None:
        return await self._events.find_one({"idempotent_event_id": idempotent_event_id}, session=session)

    async def get(self, event_id: str) -> dict[str, Any] | None:
        return await self._events.find_one({"_id": event_id})

    async def insert(self, record: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.insert_one(record, session=session)

    async def take(
        self, event_id: str, from_statuses: tuple[str, ...], now: datetime, lease_until: datetime, owner: str
    ) -> bool:
        """Compare-and-set the initial record into `delivering` for this owner (one dispatcher at a time)."""
        result = await self._events.update_one(
            {
                "_id": event_id,
                "$or": [
                    {"status": {"$in": list(from_statuses)}},
                    {"status": "delivering", "lease_until": {"$lt": now}},
                ],
            },
            {"$set": {"status": "delivering", "lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def update(self, event_id: str, fields: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.update_one({"_id": event_id}, {"$set": fields}, session=session)

    async def attempts_of(self, initial_attempt_id: str) -> list[dict[str, Any]]:
        return (
            await self._events.find({"initial_attempt_id": initial_attempt_id})
            .sort("created_at", ASCENDING)
            .to_list(None)
        )


class EndpointStore:
    """Projection of `profile.updated`: where and how each profile's webhooks go."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._endpoints = db["webhook_endpoints"]

    async def apply(self, update: ProfileUpdated, session: AsyncClientSession) -> bool:
        current = await self._endpoints.find_one({"_id": update.profile_id}, {"version": 1}, session=session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        await self._endpoints.update_one(
            {"_id": update.profile_id},
            {
                "$set": {
                    "merchant_id": update.merchant_id,
                    "url": update.webhook_url,
                    "enabled": update.webhooks_enabled,
                    "hash_key": update.payment_response_hash_key,
                    "whsec_secrets": list(update.standard_webhooks_secrets),
                    "custom_headers": update.custom_headers,
                    "version": update.version,
                },
                # A URL change re-enables an endpoint that 410 Gone had disabled.
                "$unset": {"disabled_reason": ""},
            },
            upsert=True,
            session=session,
        )
        return True

    async def get(self, profile_id: str) -> dict[str, Any] | None:
        return await self._endpoints.find_one({"_id": profile_id})

    async def disable(self, profile_id: str, reason: str) -> None:
        await self._endpoints.update_one({"_id": profile_id}, {"$set": {"disabled_reason": reason}})
