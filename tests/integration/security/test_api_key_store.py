"""Intake's API-key repository on the MongoDB-wire server: unknown keys answered from memory, revocation of the
keys a key minted, and no revoked key put back into the cache by a read that was under way during the revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from recovery_contracts.api.api_keys import ApiKeyCreate, ApiKeyScope
from recovery_intake.adapters.configuration import ApiKeyRepository
from recovery_intake.domain.api_keys import api_key_document, issue_api_key

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MERCHANT = "merchant_store"


class CountingKeys:
    """The `api_keys` collection, counting `find_one` calls (what a lookup costs the database); `hold`, when set,
    is awaited by the next `find_one` after its read and before it answers."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.find_ones = 0
        self.hold: asyncio.Event | None = None
        self.read_done = asyncio.Event()

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        self.find_ones += 1
        hold, self.hold = self.hold, None
        found = await self._collection.find_one(*args, **kwargs)
        if hold is not None:
            self.read_done.set()
            await hold.wait()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


@pytest.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()


def repository(database: Any, **seconds: float) -> tuple[ApiKeyRepository, CountingKeys]:
    keys = CountingKeys(database["api_keys"])
    return ApiKeyRepository({"api_keys": keys}, **seconds), keys  # type: ignore[arg-type]


async def stored_key(store: ApiKeyRepository, *, minted_by: str | None = None) -> dict[str, Any]:
    issued = issue_api_key("snd", "integration-test-hash-secret")
    body = ApiKeyCreate(name="k", expiration="never")
    doc = api_key_document(issued, MERCHANT, body, NOW, scopes={ApiKeyScope.MANAGEMENT}, created_by_key=minted_by)
    await store.add(doc)
    return doc


async def test_an_unknown_key_costs_one_read_until_its_memory_expires(database: Any) -> None:
    store, keys = repository(database, cache_seconds=60, unknown_key_seconds=60)
    results = await asyncio.gather(*(store.by_digest("f" * 64) for _ in range(20)))
    assert results == [None] * 20
    for _ in range(20):
        assert await store.by_digest("f" * 64) is None
    assert keys.find_ones == 1
    # A key created through this instance is found at once, although it was looked up before.
    created = await stored_key(store)
    assert (await store.by_digest(created["digest"]) or {}).get("_id") == created["_id"]
    remembered, keys_without_memory = repository(database, cache_seconds=60)
    for _ in range(3):
        assert await remembered.by_digest("e" * 64) is None
    assert keys_without_memory.find_ones == 3


async def test_revoking_a_key_revokes_what_it_minted_and_theirs(database: Any) -> None:
    store, _ = repository(database, cache_seconds=60)
    root = await stored_key(store)
    child = await stored_key(store, minted_by=root["_id"])
    grandchild = await stored_key(store, minted_by=child["_id"])
    other = await stored_key(store)
    for key in (root, child, grandchild, other):
        assert not (await store.by_digest(key["digest"]) or {}).get("revoked")  # now cached
    assert await store.count_active(MERCHANT, NOW) == 4

    revoked = await store.revoke(MERCHANT, root["_id"], NOW + timedelta(minutes=1))
    assert revoked == [root["_id"], child["_id"], grandchild["_id"]]
    for key in (root, child, grandchild):
        assert (await store.by_digest(key["digest"]) or {}).get("revoked") is True, "the cache kept a revoked key"
    assert not (await store.by_digest(other["digest"]) or {}).get("revoked")
    stored = await database["api_keys"].find_one({"_id": grandchild["_id"]})
    assert stored["revoked_with"] == root["_id"] and stored["created_by_key"] == child["_id"]
    assert await store.count_active(MERCHANT, NOW) == 1
    assert await store.revoke(MERCHANT, root["_id"], NOW) == []
    assert await store.revoke("merchant_other", other["_id"], NOW) == []


async def test_a_read_under_way_during_a_revocation_does_not_put_the_key_back(database: Any) -> None:
    store, keys = repository(database, cache_seconds=60)
    key = await stored_key(store)
    keys.hold = held = asyncio.Event()
    reader = asyncio.create_task(store.by_digest(key["digest"]))
    await keys.read_done.wait()  # the reader has read the key, not yet revoked, and will cache it after...
    assert await store.revoke(MERCHANT, key["_id"], NOW) == [key["_id"]]  # ...the revocation's write
    held.set()
    assert (await reader or {}).get("revoked") is False  # that request saw the key as it was...
    reads = keys.find_ones
    assert (await store.by_digest(key["digest"]) or {}).get("revoked") is True  # ...but it was not kept
    assert keys.find_ones == reads + 1
