"""A read-through cache: a bounded TtlCache in front of a database read, where concurrent misses of one key
share one read (deliveries to one endpoint arriving together cost one round trip, not one each)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from recovery_runtime.ttl_cache import TtlCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadThrough(Generic[K, V]):
    """`read(key)` loads a value (None: nothing to cache); `ttl_seconds` and `max_entries` bound the cache."""

    def __init__(self, read: Callable[[K], Awaitable[V | None]], ttl_seconds: float, max_entries: int) -> None:
        self._read = read
        self._cache: TtlCache[K, V] = TtlCache(ttl_seconds, max_entries)
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def cached(self, key: K) -> V | None:
        return self._cache.get(key)

    def put(self, key: K, value: V) -> None:
        self._cache.put(key, value)

    def forget(self, key: K) -> None:
        self._cache.invalidate(key)
        # A read in flight may have started before the change: later callers read again.
        self._loading.pop(key, None)

    async def get(self, key: K) -> V | None:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._cache.generation()
        try:
            value = await self._read(key)
            if value is not None:
                self._cache.put(key, value, read_at_generation=generation)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: the waiters re-raise it
            raise
        else:
            future.set_result(value)
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        return value
