"""Endpoint health for the merchant's operators, read from the dispatcher's collections: the profiles' endpoints
(`webhook_endpoints`), their breakers (`endpoint_health`) and their most recent attempt records
(`webhook_events`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_dispatcher.adapters.breaker_repository import COLLECTION as HEALTH
from recovery_dispatcher.adapters.breaker_repository import breaker_of
from recovery_dispatcher.adapters.event_queries import merchant_range
from recovery_dispatcher.domain.breaker import CircuitBreaker, EndpointKey
from recovery_dispatcher.domain.endpoint_status import AttemptSample, EndpointStatus, recent_deliveries

# How many of the merchant's latest attempt records the success rate and latency are taken from.
RECENT_ATTEMPTS = 200


class MongoEndpointStatus:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], recent_attempts: int = RECENT_ATTEMPTS) -> None:
        self._endpoints = db["webhook_endpoints"]
        self._health = db[HEALTH]
        self._records = db["webhook_events"]
        self._recent = recent_attempts

    async def of_merchant(self, merchant_id: str) -> list[EndpointStatus]:
        """Every endpoint of the merchant's profiles, the current URL of each and any earlier one with a breaker
        or a recent attempt, by profile and URL."""
        endpoints = {
            doc["_id"]: doc
            async for doc in self._endpoints.find(
                {"merchant_id": merchant_id}, {"url": 1, "enabled": 1, "disabled_reason": 1, "failing_since": 1}
            )
        }
        health = {
            (doc["profile_id"], doc["url"]): doc
            async for doc in self._health.find({"profile_id": {"$in": sorted(endpoints)}})
        }
        samples: dict[EndpointKey, list[AttemptSample]] = defaultdict(list)
        records = self._records.find(
            {"_id": merchant_range(merchant_id), "url": {"$ne": None}},
            {"business_profile_id": 1, "url": 1, "is_webhook_notified": 1, "response.duration_ms": 1},
        ).sort("_id", DESCENDING)
        async for doc in records.limit(self._recent):
            duration = (doc.get("response") or {}).get("duration_ms")
            samples[(doc["business_profile_id"], doc["url"])].append(
                AttemptSample(bool(doc.get("is_webhook_notified")), duration)
            )
        current = {(profile_id, doc["url"]) for profile_id, doc in endpoints.items() if doc.get("url")}
        keys = sorted(current | {k for k in health if k[0] in endpoints} | {k for k in samples if k[0] in endpoints})
        return [self._status(key, key in current, endpoints[key[0]], health.get(key), samples[key]) for key in keys]

    @staticmethod
    def _status(
        key: EndpointKey,
        current: bool,
        endpoint: dict[str, Any],
        health: dict[str, Any] | None,
        samples: list[AttemptSample],
    ) -> EndpointStatus:
        health = health or {}
        return EndpointStatus(
            profile_id=key[0],
            url=key[1],
            current=current,
            enabled=bool(endpoint.get("enabled", True)),
            disabled_reason=endpoint.get("disabled_reason") if current else None,
            failing_since=endpoint.get("failing_since") if current else None,
            breaker=breaker_of(health) if health else CircuitBreaker(),
            slow_responses=int(health.get("slow_responses") or 0),
            last_slow_at=health.get("last_slow_at"),
            recent=recent_deliveries(samples),
        )
