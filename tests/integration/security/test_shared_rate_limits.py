"""The rate limits intake instances share (`MongoSharedRates`) on the MongoDB-wire server: a budget of `burst` at
once refilled at `per_second`, counted once however many instances take from it, exact under concurrency, with
the wait a refusal names; and two intake apps over one database keep one budget per key and per address."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from recovery_intake.adapters.rate_limits import COLLECTION, MongoSharedRates
from recovery_intake.app import build_service as build_intake
from recovery_intake.settings import IntakeSettings
from recovery_runtime.testing import FixedClock
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


async def test_a_burst_passes_then_the_refill_rate_and_a_refusal_names_its_wait(adb: Any) -> None:
    clock = FixedClock(T0)
    rates = MongoSharedRates(adb, clock)

    taken = [await rates.take("rate:k", per_second=2.0, burst=3) for _ in range(4)]

    assert taken[:3] == [0.0, 0.0, 0.0] and taken[3] == pytest.approx(0.5, abs=0.002)
    clock.advance(timedelta(milliseconds=499))
    assert await rates.take("rate:k", 2.0, 3) == pytest.approx(0.001, abs=0.0015)
    clock.advance(timedelta(milliseconds=1))
    assert await rates.take("rate:k", 2.0, 3) == 0.0
    # Another caller has a budget of its own.
    assert await rates.take("rate:other", 2.0, 3) == 0.0
    stored = await adb[COLLECTION].find_one({"_id": "rate:k"})
    assert stored["expires_at"] > stored["tat"] > T0


async def test_instances_share_one_budget_exactly_under_concurrency(adb: Any) -> None:
    clock = FixedClock(T0)
    instances = [MongoSharedRates(adb, clock) for _ in range(4)]

    waits = await asyncio.gather(*(instances[i % 4].take("rate:shared", 1.0, 5) for i in range(40)))

    assert sum(1 for w in waits if w == 0.0) == 5
    assert all(w > 0 for w in waits if w != 0.0)


class LosesOneInsert:
    """The rate-limit collection as another instance's racing insert of a new caller leaves it: the first update
    meets a duplicate key although the caller has budget left."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = True
            # The other instance took its share of the new caller's budget (one interval of 1 s).
            await self._collection.insert_one({"_id": "rate:new", "tat": T0 + timedelta(seconds=1), "expires_at": T0})
            raise DuplicateKeyError("E11000 duplicate key error (the other instance's insert)")
        return await self._collection.update_one(*args, **kwargs)


async def test_a_refusal_that_only_lost_an_insert_race_takes_the_share_again(adb: Any) -> None:
    rates = MongoSharedRates(adb, FixedClock(T0))
    racing = LosesOneInsert(adb[COLLECTION])
    rates._limits = racing

    assert await rates.take("rate:new", 1.0, 2) == 0.0
    assert racing.raced
    stored = await adb[COLLECTION].find_one({"_id": "rate:new"})
    assert stored["tat"] == T0 + timedelta(seconds=2)  # both shares counted: the budget of 2 is spent
    assert await rates.take("rate:new", 1.0, 2) == 1.0  # and the next one waits a whole interval


async def test_a_database_that_does_not_answer_lets_the_request_through() -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200", tz_aware=True
    )
    try:
        rates = MongoSharedRates(client["nowhere"], FixedClock(T0))
        assert await rates.take("rate:k", 1.0, 1) == 0.0
        # The next requests go through at once: the database is not asked again for a while.
        started = time.monotonic()
        assert [await rates.take("rate:k", 1.0, 1) for _ in range(20)] == [0.0] * 20
        assert time.monotonic() - started < 0.1
    finally:
        await client.close()


# One refill every 10 s: the requests below take far less, so they see one refill at most.
LIMITS = {"rate_limit_per_second": 0.1, "rate_limit_burst": 6, "auth_failure_per_second": 0.1, "auth_failure_burst": 4}


def test_two_intake_instances_keep_one_budget_per_caller_and_per_address(
    serve: Any, module_isolation: Isolation
) -> None:
    first, second = (serve(build_intake(settings_for(IntakeSettings, module_isolation, **LIMITS))) for _ in range(2))
    urls = [first.url, second.url]
    path = "/v2/payments/12345_pay_" + "0" * 32
    # Alternating between the instances, as a load balancer would; per process, each would let 6 through. A
    # request without a key is limited by its address (and answered 401: it is not a failed authentication).
    answers = [httpx.get(f"{urls[i % 2]}{path}", timeout=10) for i in range(12)]
    statuses = [r.status_code for r in answers]
    # 6 at once, and at most one more refilled while the requests ran.
    assert 6 <= statuses.count(401) <= 7 and statuses.count(429) == 12 - statuses.count(401), statuses
    refused = [r for r in answers if r.status_code == 429]
    assert {r.json()["error"]["code"] for r in refused} == {"RR_01"} and all(r.headers["retry-after"] for r in refused)

    # A wrong key each time (a fresh rate bucket per key): the address's failed authentications are counted once.
    failures = [
        httpx.get(f"{urls[i % 2]}{path}", headers={"api-key": f"snd_{i:02d}" + "w" * 41}, timeout=10) for i in range(8)
    ]
    statuses = [r.status_code for r in failures]
    # 4 failed authentications between them, then the address is refused by both, each after at most one more.
    assert statuses[:4] == [401] * 4, statuses
    assert statuses[-2:] == [429, 429] and statuses.count(401) <= 6, statuses
    assert "failed authentications" in failures[-1].json()["error"]["reason"]
