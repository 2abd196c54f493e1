"""The `retry_stats` collection: the merchant's retry statistics (domain/retry_stats.py), moved by `$inc` upserts.

An attempt's count is never part of the change that records the attempt: once that change committed (a
transaction, or the hot path's one-document write), the count is held in this process, and what is held is
written together every `flush_seconds` (one `bulk_write` for all of it, off every handler's path), once more when
the service drains, and before each read of this process. A process that dies, or a flush that fails, loses the
counts it held: at most once, never twice (a failed flush is not tried again, for it may have been applied in
part). One document per key (`<merchant>/<decline code>/<network>/<funding>`), written by no transaction, so
concurrent writers only queue on it; a key's counts are the sum of its documents (documents of the earlier
sharded layout, `<key>/<shard>`, are summed in)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from recovery_runtime.mongo import IndexSpec
from recovery_runtime.ttl_cache import TtlCache
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.domain.learned_hours import LearnedHours, learned_hours
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey, merged

RETRY_STATS = "retry_stats"
INDEXES = [IndexSpec(RETRY_STATS, [("merchant_id", ASCENDING)], "retry_stats_merchant")]
KEY_FIELDS = ("merchant_id", "decline_code", "card_network", "funding")
# How long a count waits in this process before it is written with the others.
FLUSH_SECONDS = 1.0
# How long a merchant's learned hours serve the planner before they are read again: hours of evidence move little
# in five minutes, and the read is one per merchant and instance in that time, not one per plan.
LEARNED_HOURS_TTL_SECONDS = 300.0

log = structlog.get_logger(__name__)


def stats_id(key: StatsKey) -> str:
    return "/".join(getattr(key, name) for name in KEY_FIELDS)


class MongoRetryStatsRepository:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        flush_seconds: float = FLUSH_SECONDS,
        learned_ttl_seconds: float = LEARNED_HOURS_TTL_SECONDS,
    ) -> None:
        self._stats = db[RETRY_STATS]
        self._flush_seconds = flush_seconds
        self._learned: TtlCache[str, LearnedHours] = TtlCache(learned_ttl_seconds)
        # Counts committed and not written yet: per document, its key and its increments.
        self._held: dict[str, tuple[StatsKey, Counter[str]]] = {}

    async def record(self, outcomes: Sequence[RetryOutcome], tx: Transaction) -> None:
        if outcomes:
            tx.after_commit(lambda: self._hold(outcomes))

    def _hold(self, outcomes: Sequence[RetryOutcome]) -> None:
        for doc_id, (key, increments) in _by_document(outcomes).items():
            self._held.setdefault(doc_id, (key, Counter()))[1].update(increments)

    async def flush(self) -> None:
        """Write the counts held (one command), and forget them whatever happens."""
        held, self._held = self._held, {}
        if not held:
            return
        writes = [
            UpdateOne({"_id": doc_id}, _upsert(key, increments), upsert=True)
            for doc_id, (key, increments) in held.items()
        ]
        try:
            await self._stats.bulk_write(writes, ordered=False)
        except PyMongoError:
            log.warning("retry_stats.flush_failed", documents=len(writes), exc_info=True)

    async def run(self) -> None:
        """The background loop writing what is held (the service's loops; a final flush on drain)."""
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def of_merchant(self, merchant_id: str) -> list[RetryStats]:
        await self.flush()  # what this process holds counts too
        docs = await self._stats.find({"merchant_id": merchant_id}).to_list(None)
        return merged(
            RetryStats.from_counters(StatsKey(*(doc[name] for name in KEY_FIELDS)), doc.get("counts") or {})
            for doc in docs
        )

    async def learned(self, merchant_id: str) -> LearnedHours:
        found = self._learned.get(merchant_id)
        if found is None:
            found = learned_hours(await self.of_merchant(merchant_id))
            self._learned.put(merchant_id, found)
        return found


def _by_document(outcomes: Sequence[RetryOutcome]) -> dict[str, tuple[StatsKey, Counter[str]]]:
    """The outcomes' increments summed per document (one per key)."""
    found: dict[str, tuple[StatsKey, Counter[str]]] = {}
    for outcome in outcomes:
        doc_id = stats_id(outcome.key)
        found.setdefault(doc_id, (outcome.key, Counter()))[1].update(outcome.increments())
    return found


def _upsert(key: StatsKey, increments: Counter[str]) -> dict[str, Any]:
    return {
        "$inc": {f"counts.{path}": n for path, n in increments.items()},
        "$setOnInsert": {name: getattr(key, name) for name in KEY_FIELDS},
    }
