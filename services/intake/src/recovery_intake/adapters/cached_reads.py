"""Configuration documents read on every request (API keys, profiles, connector accounts), kept per process.

Entries live `seconds` (`recovery_runtime.ttl_cache.TtlCache`); a write through this process invalidates its
entry at once, another intake instance's write is seen within `seconds`. Absent documents are not kept (a new
key or account works at once), concurrent misses of one key share a single read, and callers get copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from recovery_runtime.ttl_cache import TtlCache

Document = dict[str, Any]


class CachedReads:
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self._cache: TtlCache[Hashable, Document] = TtlCache(seconds, max_entries)
        self._loading: dict[Hashable, asyncio.Future[Document | None]] = {}

    async def read(self, key: Hashable, load: Callable[[], Awaitable[Document | None]]) -> Document | None:
        """The kept document, else `load()`."""
        doc = self._cache.get(key)
        if doc is not None:
            return dict(doc)
        pending = self._loading.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return dict(shared) if shared is not None else None
        future: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._cache.generation()
        try:
            doc = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        if doc is not None:
            # Not kept when a write invalidated anything meanwhile: the value read may predate it.
            self._cache.put(key, dict(doc), read_at_generation=generation)
        future.set_result(doc)
        return dict(doc) if doc is not None else None

    def invalidate(self, key: Hashable) -> None:
        """A write changed the document: drop it, and let a read already under way not refill it."""
        self._cache.invalidate(key)
        self._loading.pop(key, None)
