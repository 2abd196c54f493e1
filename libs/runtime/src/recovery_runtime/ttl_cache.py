"""A bounded cache whose entries expire: the one read-through cache every service uses for configuration."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries live `ttl_seconds` (on a monotonic clock) and the least recently used goes when `max_entries` is
    reached, so what stays in memory is bounded whatever the traffic. `ttl_seconds <= 0` caches nothing.

    `generation` protects against a stale refill: a reader takes `generation()` before its database read and hands
    it to `put`; an `invalidate` in between (a writer changed the record) makes that `put` a no-op, so the value
    read before the change is not cached after it."""

    def __init__(
        self, ttl_seconds: float, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def generation(self) -> int:
        return self._generation

    def put(self, key: K, value: V, *, read_at_generation: int | None = None) -> None:
        if self._ttl <= 0:
            return
        if read_at_generation is not None and read_at_generation != self._generation:
            return
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def invalidate(self, key: K) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
