"""Intake's per-process cache of configuration documents (API keys, profiles, connector accounts)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recovery_intake.adapters.cached_reads import CachedReads


async def test_concurrent_misses_share_one_read_and_hits_read_nothing() -> None:
    cache = CachedReads(60)
    reads = 0

    async def load() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return {"_id": "key_1", "version": 1}

    docs = await asyncio.gather(*(cache.read(("api_keys", "digest"), load) for _ in range(32)))
    assert reads == 1 and all(d == {"_id": "key_1", "version": 1} for d in docs)
    docs[0]["version"] = 99  # callers get copies
    assert await cache.read(("api_keys", "digest"), load) == {"_id": "key_1", "version": 1}
    assert reads == 1


async def test_absent_documents_are_not_kept_and_a_write_drops_the_entry() -> None:
    cache = CachedReads(60)
    found: dict[str, Any] | None = None

    async def load() -> dict[str, Any] | None:
        return found

    assert await cache.read(("profiles", "m", "p"), load) is None
    found = {"_id": "p", "version": 1}
    assert await cache.read(("profiles", "m", "p"), load) == found  # a new profile is seen at once
    found = {"_id": "p", "version": 2}
    assert (await cache.read(("profiles", "m", "p"), load))["version"] == 1
    cache.invalidate(("profiles", "m", "p"))
    assert (await cache.read(("profiles", "m", "p"), load))["version"] == 2


async def test_entries_expire_and_zero_seconds_disables_keeping() -> None:
    versions = iter(range(1, 10))

    async def load() -> dict[str, Any]:
        return {"_id": "a", "version": next(versions)}

    off = CachedReads(0)
    assert (await off.read(("x",), load))["version"] == 1
    assert (await off.read(("x",), load))["version"] == 2
    short = CachedReads(0.05)
    assert (await short.read(("x",), load))["version"] == 3
    assert (await short.read(("x",), load))["version"] == 3
    await asyncio.sleep(0.08)
    assert (await short.read(("x",), load))["version"] == 4


async def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    cache = CachedReads(60)

    async def broken() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(cache.read(("k",), broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def fine() -> dict[str, Any]:
        return {"_id": "k"}

    assert await cache.read(("k",), fine) == {"_id": "k"}
    with pytest.raises(RuntimeError):
        await CachedReads(60).read(("k",), broken)


async def test_a_read_under_way_when_the_document_changes_is_not_kept() -> None:
    cache = CachedReads(60)
    version = 1
    reading = asyncio.Event()

    async def slow_load() -> dict[str, Any]:
        read = {"_id": "p", "version": version}
        reading.set()
        await asyncio.sleep(0.01)
        return read

    pending = asyncio.create_task(cache.read(("profiles", "m", "p"), slow_load))
    await reading.wait()
    version = 2
    cache.invalidate(("profiles", "m", "p"))  # a write through this process, while the read was under way
    assert (await pending)["version"] == 1  # that caller sees what it read...

    async def load() -> dict[str, Any]:
        return {"_id": "p", "version": version}

    assert (await cache.read(("profiles", "m", "p"), load))["version"] == 2  # ...but it was not kept
