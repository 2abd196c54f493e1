"""The `retry_stats` collection: the merchant's retry statistics (domain/retry_stats.py), moved by `$inc` upserts
in the same transaction as the recovery whose attempts they count.

A key is split over `SHARDS` documents (`<merchant>/<decline code>/<network>/<funding>/<shard>`, the shard from
the payment id): every attempt of a busy merchant with the same key would otherwise write one document, and
concurrent transactions on one document abort each other (docs/analytics.md measured it for its daily figures).
A key's counts are the sum of its documents."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey, merged

RETRY_STATS = "retry_stats"
INDEXES = [IndexSpec(RETRY_STATS, [("merchant_id", ASCENDING)], "retry_stats_merchant")]
SHARDS = 32
KEY_FIELDS = ("merchant_id", "decline_code", "card_network", "funding")


def stats_id(key: StatsKey, shard: int) -> str:
    return "/".join((*(getattr(key, name) for name in KEY_FIELDS), str(shard)))


def shard_of(payment_id: str) -> int:
    return zlib.crc32(payment_id.encode()) % SHARDS


class MongoRetryStatsRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._stats = db[RETRY_STATS]

    async def record(self, outcomes: Sequence[RetryOutcome], tx: Transaction) -> None:
        for outcome in outcomes:
            key = outcome.key
            await self._stats.update_one(
                {"_id": stats_id(key, shard_of(outcome.payment_id))},
                {
                    "$inc": {f"counts.{path}": n for path, n in outcome.increments().items()},
                    "$setOnInsert": {name: getattr(key, name) for name in KEY_FIELDS},
                },
                upsert=True,
                session=tx.session,
            )

    async def of_merchant(self, merchant_id: str) -> list[RetryStats]:
        docs = await self._stats.find({"merchant_id": merchant_id}).to_list(None)
        return merged(
            RetryStats.from_counters(StatsKey(*(doc[name] for name in KEY_FIELDS)), doc.get("counts") or {})
            for doc in docs
        )
