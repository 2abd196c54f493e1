"""The rate limits all intake instances share: one document per caller in `rate_limits`, taken in one update.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket told by one time): a caller's document holds
its theoretical arrival time `tat`. A request is let through when `tat` is at most `now + (burst - 1) * interval`
(interval = 1 / per_second), and then `tat` becomes `max(tat, now) + interval`; the filter and the change are one
`update_one` (an aggregation-pipeline update, MongoDB 4.2+), so instances racing for the last share cannot both
have it. A refused request matches nothing: the upsert then tries to insert the caller's `_id` again and fails
with a duplicate key, which is the refusal; only then is `tat` read, for `Retry-After`. Documents expire
(`expires_at`, a TTL index) a minute after their budget is whole again.

The instances' clocks are the time base: a host whose clock runs ahead of the others takes shares early, by its
skew. A database that does not answer lets the request through (logged, counted), and the requests of the next
`UNAVAILABLE_SECONDS` too without asking it (one request waits out the client's server selection, not every one):
the per-process buckets in front of this one still bound each instance.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from recovery_intake import metrics
from recovery_runtime.clock import Clock
from recovery_runtime.mongo import IndexSpec

log = structlog.get_logger(__name__)

COLLECTION = "rate_limits"
INDEXES = [IndexSpec(COLLECTION, [("expires_at", ASCENDING)], "rate_limit_expiry", options={"expireAfterSeconds": 0})]
# How long an idle caller's document outlives the moment its budget is whole again.
_KEPT_MS = 60_000
# After the database did not answer, how long requests go through without asking it again.
UNAVAILABLE_SECONDS = 5.0


class MongoSharedRates:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], clock: Clock) -> None:
        self._limits = db[COLLECTION]
        self._clock = clock
        self._unavailable_until = float("-inf")  # time.monotonic()

    async def take(self, caller: str, per_second: float, burst: int) -> float:
        if time.monotonic() < self._unavailable_until:
            return 0.0
        now = self._clock.now()
        interval_ms = max(1, round(1000 / per_second))
        tolerance_ms = interval_ms * (burst - 1)
        try:
            await self._limits.update_one(
                {"_id": caller, "tat": {"$lte": now + timedelta(milliseconds=tolerance_ms)}},
                [
                    {"$set": {"tat": {"$add": [{"$max": ["$tat", now]}, interval_ms]}}},
                    {"$set": {"expires_at": {"$add": ["$tat", tolerance_ms + _KEPT_MS]}}},
                ],
                upsert=True,
            )
            return 0.0
        except DuplicateKeyError:
            held = await self._read_tat(caller)
        except PyMongoError as error:
            return self._unanswered(error)
        if held is None:
            return 0.0  # expired between the two calls: the budget is whole
        wait = (held - timedelta(milliseconds=tolerance_ms) - now).total_seconds()
        return max(wait, 0.001)

    async def _read_tat(self, caller: str) -> datetime | None:
        try:
            doc = await self._limits.find_one({"_id": caller}, {"tat": 1})
        except PyMongoError as error:
            self._unanswered(error)
            return None
        return None if doc is None else cast(datetime, doc["tat"])

    def _unanswered(self, error: PyMongoError) -> float:
        log.warning("rate_limit.shared_unavailable", error=f"{type(error).__name__}: {error}")
        metrics.SHARED_RATE_LIMIT_ERRORS.inc()
        self._unavailable_until = time.monotonic() + UNAVAILABLE_SECONDS
        return 0.0
