"""The rate limits all intake instances share: one document per caller in `rate_limits`, taken in one update.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket told by one time): a caller's document holds
its theoretical arrival time `tat`. A request is let through when `tat` is at most `now + (burst - 1) * interval`
(interval = 1 / per_second), and then `tat` becomes `max(tat, now) + interval`; the filter and the change are one
`update_one` (an aggregation-pipeline update, MongoDB 4.2+), so instances racing for the last share cannot both
have it. A refused request matches nothing: the upsert then tries to insert the caller's `_id` again and fails
with a duplicate key, which is the refusal; only then is `tat` read, for `Retry-After` (and when it shows budget
left, the refusal was two instances inserting a new caller at once: taken again). Documents expire
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
# Tries of one take that meet a refusal while the caller has budget left (racing inserts of a new caller).
_TRIES = 3


class MongoSharedRates:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], clock: Clock) -> None:
        self._limits = db[COLLECTION]
        self._clock = clock
        self._unavailable_until = float("-inf")  # time.monotonic()

    async def take(self, caller: str, per_second: float, burst: int) -> float:
        if time.monotonic() < self._unavailable_until:
            return 0.0
        interval_ms = max(1, round(1000 / per_second))
        tolerance = timedelta(milliseconds=interval_ms * (burst - 1))
        try:
            for _ in range(_TRIES):
                now = self._clock.now()
                if await self._took(caller, now, interval_ms, tolerance):
                    return 0.0
                held = await self._limits.find_one({"_id": caller}, {"tat": 1})
                if held is not None and held["tat"] - tolerance > now:
                    return cast(float, (held["tat"] - tolerance - now).total_seconds())
                # Budget left, yet refused: another instance's upsert of a new caller won the insert (the duplicate
                # key), or the document expired in between. Take again.
        except PyMongoError as error:
            return self._unanswered(error)
        return interval_ms / 1000  # still racing: wait one interval

    async def _took(self, caller: str, now: datetime, interval_ms: int, tolerance: timedelta) -> bool:
        """One try: True when the share was taken; False when the filter matched nothing (the upsert's duplicate
        key), which is a refusal only when the caller's budget is spent."""
        tolerance_ms = tolerance // timedelta(milliseconds=1)
        try:
            await self._limits.update_one(
                {"_id": caller, "tat": {"$lte": now + tolerance}},
                [
                    {"$set": {"tat": {"$add": [{"$max": ["$tat", now]}, interval_ms]}}},
                    {"$set": {"expires_at": {"$add": ["$tat", tolerance_ms + _KEPT_MS]}}},
                ],
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    def _unanswered(self, error: PyMongoError) -> float:
        log.warning("rate_limit.shared_unavailable", error=f"{type(error).__name__}: {error}")
        metrics.SHARED_RATE_LIMIT_ERRORS.inc()
        self._unavailable_until = time.monotonic() + UNAVAILABLE_SECONDS
        return 0.0
