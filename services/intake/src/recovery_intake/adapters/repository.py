"""Intake's collections: merchants, profiles, API keys, connector accounts and payment intents.

Every read is scoped by merchant (and profile where it applies): another merchant's id reads as absent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_runtime.mongo import IndexSpec

INDEXES = [
    IndexSpec("api_keys", [("digest", ASCENDING)], "api_key_digest", unique=True),
    IndexSpec("api_keys", [("merchant_id", ASCENDING), ("created", DESCENDING)], "api_key_merchant"),
    IndexSpec("profiles", [("merchant_id", ASCENDING)], "profile_merchant"),
    IndexSpec("profiles", [("standard_webhooks_retire_at", ASCENDING)], "profile_secret_retirement"),
    IndexSpec("connector_accounts", [("merchant_id", ASCENDING), ("profile_id", ASCENDING)], "mca_profile"),
    IndexSpec(
        "payment_intents",
        [("merchant_id", ASCENDING), ("merchant_reference_id", ASCENDING)],
        "intent_reference",
        unique=True,
    ),
]

Session = AsyncClientSession | None


class ConfigCache:
    """Configuration documents (API keys, profiles, connector accounts) read on every request, kept per process
    for `seconds`. A write through this repository drops the entry at once (in this process; another intake
    instance sees the change within `seconds`). Absent documents are not cached: a new key or account works at
    once. Entries are keyed by collection and query and carry the document's `version` when it has one."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._loading: dict[tuple[Any, ...], asyncio.Future[dict[str, Any] | None]] = {}

    async def read(
        self, key: tuple[Any, ...], load: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any] | None:
        """The cached document, else `load()`; concurrent misses of one key share a single read."""
        doc = self.get(key)
        if doc is not None:
            return doc
        pending = self._loading.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return dict(shared) if shared is not None else None
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            doc = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._loading.pop(key, None)
        self.put(key, doc)
        future.set_result(doc)
        return dict(doc) if doc is not None else None

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            del self._entries[key]
            return None
        return dict(entry[1])

    def put(self, key: tuple[Any, ...], doc: dict[str, Any] | None) -> None:
        if doc is None or self._seconds <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._seconds, dict(doc))

    def drop(self, collection: str, doc_id: Any) -> None:
        for key in [k for k, (_, doc) in self._entries.items() if k[0] == collection and doc.get("_id") == doc_id]:
            del self._entries[key]


class IntakeRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], cache_seconds: float = 0.0) -> None:
        self.cache = ConfigCache(cache_seconds)
        self.merchants = db["merchants"]
        self.profiles = db["profiles"]
        self.api_keys = db["api_keys"]
        self.connector_accounts = db["connector_accounts"]
        self.intents = db["payment_intents"]

    # merchants
    async def merchant(self, merchant_id: str) -> dict[str, Any] | None:
        return await self.merchants.find_one({"_id": merchant_id})

    # profiles
    async def profile(self, merchant_id: str, profile_id: str, session: Session = None) -> dict[str, Any] | None:
        """Cached outside transactions (`ConfigCache`); inside one, always read."""
        if session is not None:
            return await self.profiles.find_one({"_id": profile_id, "merchant_id": merchant_id}, session=session)
        return await self.cache.read(
            ("profiles", merchant_id, profile_id),
            lambda: self.profiles.find_one({"_id": profile_id, "merchant_id": merchant_id}),
        )

    async def profiles_with_secrets_to_retire(self, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Profiles whose rotated-out Standard Webhooks secrets have reached the end of their overlap."""
        return await self.profiles.find(
            {"standard_webhooks_retire_at": {"$lte": now}}, {"_id": 1, "merchant_id": 1}
        ).to_list(limit)

    async def save_profile(self, doc: dict[str, Any], expected_version: int, session: AsyncClientSession) -> bool:
        self.cache.drop("profiles", doc["_id"])
        result = await self.profiles.replace_one(
            {"_id": doc["_id"], "merchant_id": doc["merchant_id"], "version": expected_version},
            doc,
            session=session,
        )
        return result.matched_count == 1

    # API keys
    async def api_key_by_digest(self, digest: str) -> dict[str, Any] | None:
        """Cached (`ConfigCache`): a revocation through this instance applies at once, through another within
        the cache's seconds; expiry is checked by the caller on every request."""
        return await self.cache.read(("api_keys", digest), lambda: self.api_keys.find_one({"digest": digest}))

    async def api_key(self, merchant_id: str, key_id: str) -> dict[str, Any] | None:
        return await self.api_keys.find_one({"_id": key_id, "merchant_id": merchant_id})

    async def list_api_keys(self, merchant_id: str, limit: int, skip: int) -> list[dict[str, Any]]:
        return (
            await self.api_keys.find({"merchant_id": merchant_id, "revoked": False})
            .sort("created", DESCENDING)
            .skip(skip)
            .limit(limit)
            .to_list(limit)
        )

    async def revoke_api_key(self, merchant_id: str, key_id: str, now: datetime) -> bool:
        self.cache.drop("api_keys", key_id)
        result = await self.api_keys.update_one(
            {"_id": key_id, "merchant_id": merchant_id, "revoked": False},
            {"$set": {"revoked": True, "revoked_at": now}},
        )
        return result.modified_count == 1

    # connector accounts
    async def connector_account(
        self, merchant_id: str, account_id: str, session: Session = None, *, profile_id: str | None = None
    ) -> dict[str, Any] | None:
        query = {"_id": account_id, "merchant_id": merchant_id}
        if profile_id is not None:
            query["profile_id"] = profile_id
        if session is not None:
            return await self.connector_accounts.find_one(query, session=session)
        return await self.cache.read(
            ("connector_accounts", merchant_id, account_id, profile_id), lambda: self.connector_accounts.find_one(query)
        )

    async def connector_accounts_of(self, merchant_id: str, profile_id: str) -> list[dict[str, Any]]:
        return await self.connector_accounts.find({"merchant_id": merchant_id, "profile_id": profile_id}).to_list(200)

    # payment intents
    async def intent(self, merchant_id: str, payment_id: str, profile_id: str | None = None) -> dict[str, Any] | None:
        query = {"_id": payment_id, "merchant_id": merchant_id}
        if profile_id is not None:
            query["profile_id"] = profile_id
        return await self.intents.find_one(query)

    async def intent_by_reference(
        self, merchant_id: str, reference: str, session: Session = None
    ) -> dict[str, Any] | None:
        return await self.intents.find_one(
            {"merchant_id": merchant_id, "merchant_reference_id": reference}, session=session
        )
