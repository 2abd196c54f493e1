"""Intake's configuration in MongoDB: merchants, profiles, API keys and connector accounts, one repository each.

Every read is scoped by merchant (and profile where it applies): another merchant's id reads as absent. Profiles,
API keys and connector accounts are read on every request and kept per process for `cache_seconds`
(`CachedReads`; unknown API keys for `unknown_key_seconds` too); reads inside a transaction always go to the
database.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from recovery_intake.adapters.cached_reads import CachedReads
from recovery_intake.dependencies import Document
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction

INDEXES = [
    IndexSpec("api_keys", [("digest", ASCENDING)], "api_key_digest", unique=True),
    IndexSpec("api_keys", [("merchant_id", ASCENDING), ("created", DESCENDING)], "api_key_merchant"),
    IndexSpec("api_keys", [("merchant_id", ASCENDING), ("created_by_key", ASCENDING)], "api_key_minted_by"),
    IndexSpec("profiles", [("merchant_id", ASCENDING)], "profile_merchant"),
    IndexSpec("profiles", [("standard_webhooks_retire_at", ASCENDING)], "profile_secret_retirement"),
    IndexSpec("connector_accounts", [("merchant_id", ASCENDING), ("profile_id", ASCENDING)], "mca_profile"),
]


async def _replace_version(
    collection: AsyncCollection[Document], cache: CachedReads, doc: Document, expected_version: int, tx: Transaction
) -> bool:
    """Replace a merchant's versioned document if it still has `expected_version` (compare-and-set), dropping
    the cached copy."""
    key = (doc["merchant_id"], doc["_id"])
    cache.invalidate(key)
    # Again once committed: a reader between now and the commit may have kept the previous version.
    tx.after_commit(lambda: cache.invalidate(key))
    result = await collection.replace_one(
        {"_id": doc["_id"], "merchant_id": doc["merchant_id"], "version": expected_version},
        doc,
        session=tx.session,
    )
    return result.matched_count == 1


class MerchantRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._merchants = db["merchants"]

    async def get(self, merchant_id: str) -> Document | None:
        return await self._merchants.find_one({"_id": merchant_id})

    async def add(self, doc: Document) -> None:
        await self._merchants.insert_one(doc)


class ProfileRepository:
    def __init__(self, db: AsyncDatabase[Document], cache_seconds: float = 0.0) -> None:
        self._profiles = db["profiles"]
        self._cache = CachedReads(cache_seconds)

    async def get(self, merchant_id: str, profile_id: str, tx: Transaction | None = None) -> Document | None:
        query = {"_id": profile_id, "merchant_id": merchant_id}
        if tx is not None:
            return await self._profiles.find_one(query, session=tx.session)
        return await self._cache.read((merchant_id, profile_id), lambda: self._profiles.find_one(query))

    async def add(self, doc: Document, tx: Transaction) -> None:
        await self._profiles.insert_one(doc, session=tx.session)

    async def count(self, merchant_id: str) -> int:
        return await self._profiles.count_documents({"merchant_id": merchant_id})

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        return await _replace_version(self._profiles, self._cache, doc, expected_version, tx)

    async def with_secrets_to_retire(self, now: datetime, limit: int = 500) -> list[Document]:
        return await self._profiles.find(
            {"standard_webhooks_retire_at": {"$lte": now}}, {"_id": 1, "merchant_id": 1}
        ).to_list(limit)


class ApiKeyRepository:
    def __init__(
        self, db: AsyncDatabase[Document], cache_seconds: float = 0.0, unknown_key_seconds: float = 0.0
    ) -> None:
        self._keys = db["api_keys"]
        self._cache = CachedReads(cache_seconds, absent_seconds=unknown_key_seconds)

    async def by_digest(self, digest: str) -> Document | None:
        return await self._cache.read(digest, lambda: self._keys.find_one({"digest": digest}))

    async def get(self, merchant_id: str, key_id: str) -> Document | None:
        return await self._keys.find_one({"_id": key_id, "merchant_id": merchant_id})

    async def active(self, merchant_id: str, limit: int, skip: int) -> list[Document]:
        return (
            await self._keys.find({"merchant_id": merchant_id, "revoked": False})
            .sort("created", DESCENDING)
            .skip(skip)
            .limit(limit)
            .to_list(limit)
        )

    async def count_active(self, merchant_id: str, now: datetime) -> int:
        unexpired = [{"expires_at": None}, {"expires_at": {"$gt": now}}]
        return await self._keys.count_documents({"merchant_id": merchant_id, "revoked": False, "$or": unexpired})

    async def add(self, doc: Document) -> None:
        await self._keys.insert_one(doc)
        # Its digest may be remembered as unknown (had it been presented before it existed): known now.
        self._cache.invalidate(doc["digest"])

    async def update(self, key: Document, changes: Document) -> Document | None:
        query = {"_id": key["_id"], "merchant_id": key["merchant_id"], "revoked": False}
        written = await self._keys.update_one(query, {"$set": changes})
        # After the write: authentication reads the key (its expiry) by digest, through the cache.
        self._cache.invalidate(key["digest"])
        return {**key, **changes} if written.matched_count == 1 else None

    async def revoke(self, merchant_id: str, key_id: str, now: datetime) -> list[str]:
        query = {"_id": key_id, "merchant_id": merchant_id, "revoked": False}
        # Indexed round trips, not `find_one_and_update` (slow on SecantusDB): a revocation is rare.
        key = await self._keys.find_one(query, {"digest": 1})
        if key is None:
            return []
        written = await self._keys.update_one(query, {"$set": {"revoked": True, "revoked_at": now}})
        # After the write: a reader that read the key before it keeps it only for its own request.
        self._cache.invalidate(key["digest"])
        if written.modified_count != 1:
            return []  # a concurrent revocation won; it revokes the minted keys
        return [key_id, *await self._revoke_minted_by(merchant_id, key_id, now)]

    async def _revoke_minted_by(self, merchant_id: str, key_id: str, now: datetime) -> list[str]:
        """The keys `key_id` minted, and theirs, revoked (breadth first, each key visited once)."""
        revoked: list[str] = []
        seen, frontier = {key_id}, [key_id]
        while frontier:
            minted = await self._keys.find(
                {"merchant_id": merchant_id, "created_by_key": {"$in": frontier}}, {"digest": 1, "revoked": 1}
            ).to_list(None)
            minted = [k for k in minted if k["_id"] not in seen]
            frontier = [k["_id"] for k in minted]
            seen.update(frontier)
            live = [k for k in minted if not k["revoked"]]
            if live:
                await self._keys.update_many(
                    {"_id": {"$in": [k["_id"] for k in live]}, "merchant_id": merchant_id, "revoked": False},
                    {"$set": {"revoked": True, "revoked_at": now, "revoked_with": key_id}},
                )
                for minted_key in live:
                    self._cache.invalidate(minted_key["digest"])
                revoked += [k["_id"] for k in live]
        return revoked


class ConnectorAccountRepository:
    def __init__(self, db: AsyncDatabase[Document], cache_seconds: float = 0.0) -> None:
        self._accounts = db["connector_accounts"]
        self._cache = CachedReads(cache_seconds)

    async def get(
        self, merchant_id: str, account_id: str, *, profile_id: str | None = None, tx: Transaction | None = None
    ) -> Document | None:
        query = {"_id": account_id, "merchant_id": merchant_id}
        if tx is not None:
            account = await self._accounts.find_one(query, session=tx.session)
        else:
            account = await self._cache.read((merchant_id, account_id), lambda: self._accounts.find_one(query))
        if account is None or (profile_id is not None and account["profile_id"] != profile_id):
            return None
        return account

    async def add(self, doc: Document, tx: Transaction) -> None:
        await self._accounts.insert_one(doc, session=tx.session)

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        return await _replace_version(self._accounts, self._cache, doc, expected_version, tx)
