"""The executor's projection of payment connector accounts (`connector-account.updated`), cached per process."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import ConnectorAccountUpdated
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_executor.domain.pacing import Pace
from recovery_runtime.ttl_cache import TtlCache
from recovery_runtime.unit_of_work import Transaction


class MongoConnectorAccountRepository:
    """Only newer versions apply. Read before every charge: kept per process for `cache_seconds` (an update this
    instance applies drops its entry at once), concurrent misses share one read, an absent account is not kept."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], cache_seconds: float = 0.0) -> None:
        self._accounts = db["connector_credentials"]
        self._cache: TtlCache[str, ConnectorAccount] = TtlCache(cache_seconds, max_entries=10_000)
        self._loading: dict[str, asyncio.Task[ConnectorAccount | None]] = {}

    async def apply(self, update: ConnectorAccountUpdated, tx: Transaction) -> bool:
        doc = {
            "merchant_id": update.merchant_id,
            "profile_id": update.profile_id,
            "connector_type": update.connector_type,
            "connector_name": update.connector_name,
            "api_key": update.api_key,
            "disabled": update.disabled,
            "requests_per_second": update.requests_per_second,
            "request_burst": update.request_burst,
            "version": update.version,
        }
        # Read then write inside the caller's transaction: a concurrent writer makes it retry (write conflict),
        # and a duplicate-key error would abort the whole transaction.
        current = await self._accounts.find_one(
            {"_id": update.connector_account_id}, {"version": 1}, session=tx.session
        )
        if current is not None and current.get("version", 0) >= update.version:
            return False
        self._cache.invalidate(update.connector_account_id)
        await self._accounts.update_one(
            {"_id": update.connector_account_id}, {"$set": doc}, upsert=True, session=tx.session
        )
        return True

    async def get(self, connector_account_id: str) -> ConnectorAccount | None:
        cached = self._cache.get(connector_account_id)
        if cached is not None:
            return cached
        loading = self._loading.get(connector_account_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(connector_account_id))
            self._loading[connector_account_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(connector_account_id, None))
        return await asyncio.shield(loading)

    async def _load(self, connector_account_id: str) -> ConnectorAccount | None:
        generation = self._cache.generation()
        doc = await self._accounts.find_one({"_id": connector_account_id})
        if doc is None:
            return None
        account = ConnectorAccount(
            connector_account_id=connector_account_id,
            connector_name=doc.get("connector_name"),
            api_key=doc.get("api_key") or "",
            disabled=bool(doc.get("disabled")),
            pace=_pace(doc),
        )
        self._cache.put(connector_account_id, account, read_at_generation=generation)
        return account


def _pace(doc: dict[str, Any]) -> Pace | None:
    per_second = doc.get("requests_per_second")
    return Pace(float(per_second), int(doc.get("request_burst") or 10)) if per_second else None
