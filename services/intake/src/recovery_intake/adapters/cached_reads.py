"""Configuration documents read on every request (API keys, profiles, connector accounts), kept per process.

Entries live `seconds` (`recovery_runtime.ttl_cache.TtlCache`); a write through this process invalidates its
entry at once, another intake instance's write is seen within `seconds`. Absent documents are kept only when
`absent_seconds` says so (API keys: an unknown key presented again costs no read), else a new document is seen at
once. Concurrent misses of one key share a single read, and callers get copies. A read under way when a write
through this process invalidates anything is not kept (`TtlCache`'s generations), so a revoked key is never put
back by a reader that read it before the revocation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from recovery_runtime.ttl_cache import TtlCache

Document = dict[str, Any]


class CachedReads:
    def __init__(
        self, seconds: float, max_entries: int = 10_000, *, absent_seconds: float = 0.0, max_absent: int = 10_000
    ) -> None:
        self._cache: TtlCache[Hashable, Document] = TtlCache(seconds, max_entries)
        self._absent: TtlCache[Hashable, bool] = TtlCache(absent_seconds, max_absent)
        self._loading: dict[Hashable, asyncio.Future[Document | None]] = {}

    async def read(self, key: Hashable, load: Callable[[], Awaitable[Document | None]]) -> Document | None:
        """The kept document, else `load()`."""
        doc = self._cache.get(key)
        if doc is not None:
            return dict(doc)
        if self._absent.get(key):
            return None
        pending = self._loading.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return dict(shared) if shared is not None else None
        future: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation, absent_generation = self._cache.generation(), self._absent.generation()
        try:
            doc = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        # Not kept when a write invalidated anything meanwhile: the value read may predate it.
        if doc is not None:
            self._cache.put(key, dict(doc), read_at_generation=generation)
        else:
            self._absent.put(key, True, read_at_generation=absent_generation)
        future.set_result(doc)
        return dict(doc) if doc is not None else None

    def invalidate(self, key: Hashable) -> None:
        """A write changed (or created) the document: drop it, and let a read already under way not refill it."""
        self._cache.invalidate(key)
        self._absent.invalidate(key)
        self._loading.pop(key, None)
