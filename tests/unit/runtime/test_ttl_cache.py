"""TtlCache: entries expire, the cache stays bounded, and a read that raced a change is not cached."""

from __future__ import annotations

import pytest

from recovery_runtime.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10.0, clock=clock)
    cache.put("a", 1)
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, max_entries=2, clock=Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_a_read_from_before_an_invalidation_is_not_cached() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0, clock=Clock())
    before = cache.generation()
    cache.invalidate("key")  # a writer changed the record while the reader was reading it
    cache.put("key", "stale", read_at_generation=before)
    assert cache.get("key") is None
    cache.put("key", "fresh", read_at_generation=cache.generation())
    assert cache.get("key") == "fresh"


def test_a_zero_ttl_caches_nothing_and_sizes_are_checked() -> None:
    cache: TtlCache[str, int] = TtlCache(0.0, clock=Clock())
    cache.put("a", 1)
    assert cache.get("a") is None
    with pytest.raises(ValueError):
        TtlCache(1.0, max_entries=0)
