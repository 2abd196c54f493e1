"""The circuit breakers of endpoints on MongoDB (`endpoint_health`, the dispatcher's): one document per (profile,
URL), shared by every dispatcher, changed by compare-and-set on its `version`, read through a short cache.

A document: `_id` `<profile_id>/<sha256(url), 32 hex>`, `profile_id`, `url`, `state`, `consecutive_failures`,
`opened_at`, `cooldown_ms`, `probe_started_at`, `version`, and for operators `slow_responses`, `last_slow_at`,
`updated_at`. No document means closed with no failure (version 0): a healthy endpoint costs nothing here.

The cache makes the delivery path's read free for `cache_seconds` (a dispatcher learns of another's transition
that much later at most); a dispatcher's own writes refresh its cache at once. A compare-and-set that loses
drops the cached value: the caller reads again (`fresh`) and re-applies its transition.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_dispatcher.adapters.read_through import ReadThrough
from recovery_dispatcher.domain.breaker import CircuitBreaker, CircuitState, EndpointKey

COLLECTION = "endpoint_health"


def health_id(key: EndpointKey) -> str:
    """A document's `_id`: the profile, then a digest of the URL (URLs are long; the document keeps it)."""
    profile_id, url = key
    return f"{profile_id}/{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def _fields(breaker: CircuitBreaker) -> dict[str, Any]:
    return {
        "state": breaker.state.value,
        "consecutive_failures": breaker.consecutive_failures,
        "opened_at": breaker.opened_at,
        "cooldown_ms": None if breaker.cooldown is None else breaker.cooldown // timedelta(milliseconds=1),
        "probe_started_at": breaker.probe_started_at,
    }


def breaker_of(doc: dict[str, Any]) -> CircuitBreaker:
    cooldown = doc.get("cooldown_ms")
    return CircuitBreaker(
        state=CircuitState(doc.get("state", CircuitState.CLOSED.value)),
        consecutive_failures=int(doc.get("consecutive_failures", 0)),
        opened_at=doc.get("opened_at"),
        cooldown=None if cooldown is None else timedelta(milliseconds=cooldown),
        probe_started_at=doc.get("probe_started_at"),
        version=int(doc.get("version", 0)),
    )


class MongoBreakerRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], cache_seconds: float = 1.0, max_cached: int = 10_000):
        self._health = db[COLLECTION]
        self._cache: ReadThrough[EndpointKey, CircuitBreaker] = ReadThrough(self._load, cache_seconds, max_cached)

    def __len__(self) -> int:
        """Breakers held in memory (bounded by `max_cached`)."""
        return len(self._cache)

    async def get(self, key: EndpointKey, *, fresh: bool = False) -> CircuitBreaker:
        if fresh:
            self._cache.forget(key)
        return await self._cache.get(key) or CircuitBreaker()

    async def _load(self, key: EndpointKey) -> CircuitBreaker:
        doc = await self._health.find_one({"_id": health_id(key)})
        return CircuitBreaker() if doc is None else breaker_of(doc)

    async def save(
        self, key: EndpointKey, before: CircuitBreaker, after: CircuitBreaker, now: datetime
    ) -> CircuitBreaker | None:
        """Store `after` if the stored breaker is still `before` (its version); the stored value, or None when
        another dispatcher changed it first."""
        saved = replace(after, version=before.version + 1)
        fields = {**_fields(after), "version": saved.version, "updated_at": now}
        if before.version == 0:
            try:
                await self._health.insert_one({"_id": health_id(key), "profile_id": key[0], "url": key[1], **fields})
            except DuplicateKeyError:
                self._cache.forget(key)
                return None
        else:
            result = await self._health.update_one({"_id": health_id(key), "version": before.version}, {"$set": fields})
            if result.modified_count != 1:
                self._cache.forget(key)
                return None
        self._cache.put(key, saved)
        return saved

    async def count_slow(self, key: EndpointKey, now: datetime) -> None:
        """One more answer slower than the threshold (for operators; the breaker's state is not touched)."""
        await self._health.update_one(
            {"_id": health_id(key)},
            {
                "$inc": {"slow_responses": 1},
                "$set": {"last_slow_at": now},
                # A new document is a closed breaker like any other (its version counts from 1).
                "$setOnInsert": {
                    "profile_id": key[0],
                    "url": key[1],
                    **_fields(CircuitBreaker()),
                    "version": 1,
                    "updated_at": now,
                },
            },
            upsert=True,
        )
        cached = self._cache.cached(key)
        if cached is not None and cached.version == 0:
            self._cache.forget(key)
