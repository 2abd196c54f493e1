"""Pacing the connector (domain/pacing.py): the budget every executor shares, one document per connector account
in `connector_pacing`, and the connector that waits for its turn before each request.

A reservation is one `find_one_and_update` (an aggregation-pipeline update, MongoDB 4.2+) that moves the account's
`tat` on by the turns taken and answers the new value, so instances reserving at once each get turns of their own.
An account without a document gets one first (an insert; of two instances inserting at once, one meets the
duplicate key), then the reservation is made on it. Documents expire (`expires_at`, a TTL index) a minute after
their last turn.

The instances' clocks are the time base: a host whose clock runs ahead of the others reserves early, by its skew.
A database that does not answer lets the request go unpaced (logged, counted), and the requests of the next
`UNAVAILABLE_SECONDS` too without asking it: the connector's own 429 is then the backstop (an unknown outcome,
settled by PSYNC, never a second charge).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from recovery_executor import metrics
from recovery_executor.domain.connector import ChargeOutcome, ChargeRequest
from recovery_executor.domain.pacing import Pace
from recovery_executor.domain.ports import PaymentConnector
from recovery_runtime.clock import Clock
from recovery_runtime.mongo import IndexSpec

log = structlog.get_logger(__name__)

COLLECTION = "connector_pacing"
INDEXES = [
    IndexSpec(COLLECTION, [("expires_at", ASCENDING)], "connector_pacing_expiry", options={"expireAfterSeconds": 0})
]
# How long an idle account's document outlives its last reserved turn.
_KEPT = timedelta(minutes=1)
# After the database did not answer, how long requests go unpaced without asking it again.
UNAVAILABLE_SECONDS = 5.0
# After the connector answered 429, how long no executor takes a turn of the account (Stripe advises backing off).
RATE_LIMITED_HOLD_SECONDS = 1.0


def budget_key(connector_name: str, api_key: str) -> str:
    """One budget per account at the connector: the key it is reached with, hashed (never stored raw). Two connector
    accounts with the same secret key are one Stripe account, and share its budget."""
    return f"{connector_name}:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}"


class MongoConnectorPacing:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], clock: Clock) -> None:
        self._pacing = db[COLLECTION]
        self._clock = clock
        self._unavailable_until = float("-inf")  # time.monotonic()

    async def reserve(self, key: str, pace: Pace, count: int = 1) -> list[float]:
        """Reserve the account's next `count` turns at `pace`: the seconds from now until each (0: now). Empty when
        the database did not answer (the requests go unpaced)."""
        if time.monotonic() < self._unavailable_until:
            return []
        try:
            now = self._clock.now()
            tat_after = await self._moved_on(key, pace, count, now)
            if tat_after is None:
                await self._created(key, now)
                tat_after = await self._moved_on(key, pace, count, now)
        except PyMongoError as error:
            log.warning("connector_pacing.unavailable", error=f"{type(error).__name__}: {error}")
            metrics.PACING_ERRORS.inc()
            self._unavailable_until = time.monotonic() + UNAVAILABLE_SECONDS
            return []
        if tat_after is None:  # created, and expired at once: nothing to pace on
            return []
        return pace.waits(tat_after, count, now)

    async def hold(self, key: str, pace: Pace, seconds: float) -> None:
        """No turn of the account for `seconds` from now, for any executor (turns reserved beyond stay theirs); the
        connector answered 429. A database that does not answer: nothing held."""
        now = self._clock.now()
        try:
            await self._pacing.update_one(
                {"_id": key},
                [{"$set": {"tat": {"$max": ["$tat", pace.held_tat(now, seconds)]}}}],
            )
        except PyMongoError as error:
            log.warning("connector_pacing.unavailable", error=f"{type(error).__name__}: {error}")
            metrics.PACING_ERRORS.inc()

    async def _moved_on(self, key: str, pace: Pace, count: int, now: datetime) -> datetime | None:
        """The account's `tat` once this reservation moved it on; None when the account has no document yet."""
        step_ms = pace.interval // timedelta(milliseconds=1) * count
        kept_ms = _KEPT // timedelta(milliseconds=1)
        doc = await self._pacing.find_one_and_update(
            {"_id": key},
            [
                {"$set": {"tat": {"$add": [{"$max": ["$tat", now]}, step_ms]}}},
                {"$set": {"expires_at": {"$add": ["$tat", kept_ms]}}},
            ],
            return_document=ReturnDocument.AFTER,
            projection={"tat": 1},
        )
        if doc is None:
            return None
        tat: datetime = doc["tat"]  # the clients are tz-aware (recovery_runtime.mongo.connect)
        return tat

    async def _created(self, key: str, now: datetime) -> None:
        """The account's document with its whole budget, unless another instance wrote it first (not an upsert of
        the reservation itself: the insert that loses a race is then plainly refused, and reserves on the
        document the winner wrote)."""
        try:
            await self._pacing.insert_one({"_id": key, "tat": now, "expires_at": now + _KEPT})
        except DuplicateKeyError:
            pass


class PacedConnector:
    """A payment connector that waits for its account's turn before each request: a charge is one request, a sync
    by the PaymentIntent's id one, a sync by the attempt's metadata two (search, then the customer's list).

    The wait happens where the request would: for a charge, inside its lease's send window, so a turn too far
    away is cut with the call, as an unknown outcome that PSYNC settles, never a charge sent outside the window."""

    def __init__(self, inner: PaymentConnector, pacing: MongoConnectorPacing, key: str, pace: Pace) -> None:
        self._inner = inner
        self._pacing = pacing
        self._key = key
        self._pace = pace

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        await self._turn(1)
        return await self._answered(await self._inner.charge(request))

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        await self._turn(1 if connector_transaction_id else 2)
        return await self._answered(await self._inner.sync(request, connector_transaction_id))

    async def _answered(self, outcome: ChargeOutcome) -> ChargeOutcome:
        """A 429 (the account's limit used up, by the merchant's own traffic too): every executor holds its turns
        for `RATE_LIMITED_HOLD_SECONDS`."""
        if outcome.http_status == 429:
            metrics.PACING_HOLDS.inc()
            await self._pacing.hold(self._key, self._pace, RATE_LIMITED_HOLD_SECONDS)
        return outcome

    async def _turn(self, requests: int) -> None:
        waits = await self._pacing.reserve(self._key, self._pace, requests)
        wait = waits[0] if waits else 0.0
        metrics.PACING_WAIT_SECONDS.observe(wait)
        if wait > 0:
            await asyncio.sleep(wait)
