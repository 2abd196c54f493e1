"""The endpoint repository on MongoDB (`webhook_endpoints`): the projection of `profile.updated` (where and how
each profile's webhooks go) and the dispatcher's health marks on it, read through a short cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.adapters.read_through import ReadThrough
from recovery_dispatcher.domain.endpoint import Endpoint, switched_off
from recovery_runtime.secrets import SecretBox


class MongoEndpointRepository:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        cache_seconds: float = 2.0,
        secrets: SecretBox | None = None,
        max_cached: int = 10_000,
    ) -> None:
        self._endpoints = db["webhook_endpoints"]
        self._secrets = secrets
        self._cache: ReadThrough[str, Endpoint] = ReadThrough(self._load, cache_seconds, max_cached)

    async def apply(self, update: ProfileUpdated, session: AsyncClientSession | None) -> bool:
        """Project a profile version newer than the stored one; False for an older or repeated one."""
        current = await self._endpoints.find_one({"_id": update.profile_id}, {"version": 1}, session=session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        schedule = update.webhook_retry_schedule_seconds
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
                    "retry_schedule_seconds": list(schedule) if schedule is not None else None,
                    "disabled_event_types": list(switched_off(update)),
                    "max_deliveries_per_second": update.webhook_max_deliveries_per_second,
                    "version": update.version,
                },
                # A profile update re-enables an endpoint the dispatcher had disabled (410 Gone, long failure).
                "$unset": {"disabled_reason": "", "failing_since": ""},
            },
            upsert=True,
            session=session,
        )
        self.forget(update.profile_id)
        return True

    def forget(self, profile_id: str) -> None:
        self._cache.forget(profile_id)

    async def get(self, profile_id: str) -> Endpoint | None:
        return await self._cache.get(profile_id)

    async def _load(self, profile_id: str) -> Endpoint | None:
        doc = await self._endpoints.find_one({"_id": profile_id})
        return None if doc is None else self._endpoint(doc)

    def _endpoint(self, doc: dict[str, Any]) -> Endpoint:
        """The endpoint with its signing keys and custom header values in the clear, in memory only: the collection
        keeps what intake sealed (a value stored before it was sealed is used as it is)."""
        schedule = doc.get("retry_schedule_seconds")
        stored = Endpoint(
            profile_id=doc["_id"],
            merchant_id=doc.get("merchant_id"),
            url=doc.get("url"),
            enabled=bool(doc.get("enabled", True)),
            hash_key=doc.get("hash_key"),
            whsec_secrets=tuple(doc.get("whsec_secrets") or ()),
            custom_headers=doc.get("custom_headers") or {},
            retry_schedule_seconds=tuple(schedule) if schedule is not None else None,
            disabled_reason=doc.get("disabled_reason"),
            failing_since=doc.get("failing_since"),
            disabled_event_types=frozenset(doc.get("disabled_event_types") or ()),
            max_deliveries_per_second=doc.get("max_deliveries_per_second"),
        )
        return stored if self._secrets is None else stored.opened(self._secrets.open_if_sealed)

    async def disable(self, profile_id: str, reason: str, session: AsyncClientSession | None = None) -> bool:
        """Mark the endpoint disabled; False when it was already (another delivery or dispatcher did it)."""
        result = await self._endpoints.update_one(
            {"_id": profile_id, "disabled_reason": {"$exists": False}},
            {"$set": {"disabled_reason": reason}},
            session=session,
        )
        self.forget(profile_id)
        return result.modified_count == 1

    async def mark_failing(self, profile_id: str, since: datetime) -> None:
        """The endpoint's failing period starts (unless it had started already)."""
        await self._endpoints.update_one(
            {"_id": profile_id, "failing_since": {"$exists": False}}, {"$set": {"failing_since": since}}
        )
        cached = self._cache.cached(profile_id)
        if cached is not None and cached.failing_since is None:
            self._cache.put(profile_id, replace(cached, failing_since=since))

    async def mark_healthy(self, profile_id: str) -> None:
        """A success ends the endpoint's failing period."""
        await self._endpoints.update_one({"_id": profile_id}, {"$unset": {"failing_since": ""}})
        cached = self._cache.cached(profile_id)
        if cached is not None and cached.failing_since is not None:
            self._cache.put(profile_id, replace(cached, failing_since=None))
