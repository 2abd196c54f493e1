"""Endpoint health on the MongoDB-wire server, as two dispatchers share it: each has its own breaker repository
(its own cache) over one `endpoint_health` collection; compare-and-set keeps one count and one probe; a
healthy endpoint is never written; the endpoint projection keeps the profile's toggles and rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.adapters.breaker_repository import MongoBreakerRepository, health_id
from recovery_dispatcher.adapters.endpoint_health import SharedEndpointHealth
from recovery_dispatcher.adapters.endpoint_repository import MongoEndpointRepository
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.breaker import BreakerPolicy, CircuitState, EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.policy import classify_response
from recovery_runtime.testing import InMemoryUnitOfWork, RecordingPublisher

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
URL = "https://merchant.example/hooks"
KEY: EndpointKey = ("pro_a", URL)
POLICY = BreakerPolicy(failure_threshold=4, cooldown=timedelta(seconds=30))


@pytest.fixture
async def db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()


def health(db: Any, breakers: MongoBreakerRepository) -> SharedEndpointHealth:
    """One dispatcher's endpoint health (its own caches) over the shared collections."""
    return SharedEndpointHealth(
        MongoEndpointRepository(db, cache_seconds=0),
        breakers,
        InMemoryUnitOfWork(RecordingPublisher()),
        breaker=POLICY,
        disable_after=timedelta(days=5),
        slow_after=timedelta(seconds=5),
    )


def result(status: int, duration_ms: int = 10) -> DeliveryResult:
    return DeliveryResult(
        url=URL,
        request_headers=(),
        started_at=T0,
        duration_ms=duration_ms,
        status_code=status,
        response_headers=(),
        response_body="",
        response_body_truncated=False,
        error_message=None,
        verdict=classify_response(status, None),
    )


EVENT = WebhookEvent(
    event_id="evt_1",
    idempotent_event_id="key_1",
    event_type="payment_succeeded",
    primary_object_id="att",
    payment_id="pay",
    merchant_id="merchant_a",
    profile_id="pro_a",
    created_at=T0,
    body=b"{}",
)
ENDPOINT = Endpoint("pro_a", merchant_id="merchant_a", url=URL, failing_since=T0)


async def test_failures_through_two_dispatchers_make_one_count_and_open_one_breaker_for_both(db: Any) -> None:
    cache = 0.3
    first, second = MongoBreakerRepository(db, cache_seconds=cache), MongoBreakerRepository(db, cache_seconds=cache)
    one, two = health(db, first), health(db, second)
    assert await one.held_until(KEY, T0) is None and await two.held_until(KEY, T0) is None
    # Failures alternate between them; each compare-and-set that finds the other's change reads again.
    for n, dispatcher in enumerate((one, two, one, two)):
        await dispatcher.record(EVENT, ENDPOINT, [result(500)], T0 + timedelta(seconds=n))
    doc = await db.endpoint_health.find_one({"_id": health_id(KEY)})
    assert doc is not None and (doc["state"], doc["consecutive_failures"], doc["version"]) == ("open", 4, 4)
    assert (doc["profile_id"], doc["url"]) == KEY
    opened = T0 + timedelta(seconds=3)
    # The dispatcher that stored the opening holds the next delivery at once; the other learns of it when its
    # cached breaker expires (WEBHOOK_ENDPOINT_HEALTH_CACHE_SECONDS), not later.
    assert await two.held_until(KEY, opened) == opened + POLICY.cooldown
    assert await one.held_until(KEY, opened) is None
    await asyncio.sleep(cache + 0.05)
    assert await one.held_until(KEY, opened) == opened + POLICY.cooldown
    # Another profile on the same URL is another endpoint.
    assert await one.held_until(("pro_b", URL), opened) is None


async def test_after_the_cooldown_one_dispatcher_only_wins_the_probe(db: Any) -> None:
    first, second = MongoBreakerRepository(db, cache_seconds=0), MongoBreakerRepository(db, cache_seconds=0)
    one, two = health(db, first), health(db, second)
    for _ in range(POLICY.failure_threshold):
        await one.record(EVENT, ENDPOINT, [result(503)], T0)
    due = T0 + POLICY.cooldown
    outcomes = await asyncio.gather(*(dispatcher.held_until(KEY, due) for dispatcher in (one, two, one, two)))
    # One goes (the probe), the others come back a quarter of the cooldown later.
    assert sorted(outcomes, key=lambda o: o is not None) == [None, *[due + POLICY.cooldown / 4] * 3]
    assert (await second.get(KEY)).state is CircuitState.HALF_OPEN
    # The probe succeeds: closed for both.
    await two.record(EVENT, ENDPOINT, [result(200)], due)
    assert (await first.get(KEY)).state is CircuitState.CLOSED
    assert await one.held_until(KEY, due) is None


async def test_a_healthy_endpoint_is_never_written_and_slow_answers_are_counted(db: Any) -> None:
    breakers = MongoBreakerRepository(db, cache_seconds=60)
    dispatcher = health(db, breakers)
    healthy = Endpoint("pro_a", merchant_id="merchant_a", url=URL)
    for _ in range(3):
        assert await dispatcher.held_until(KEY, T0) is None
        await dispatcher.record(EVENT, healthy, [result(200)], T0)
    assert await db.endpoint_health.count_documents({}) == 0
    await dispatcher.record(EVENT, healthy, [result(200, duration_ms=7_000)], T0)
    doc = await db.endpoint_health.find_one({"_id": health_id(KEY)})
    assert doc is not None and doc["slow_responses"] == 1 and doc["last_slow_at"] == T0
    # The document a slow answer created is a closed breaker the next failure moves on by compare-and-set.
    await dispatcher.record(EVENT, healthy, [result(500)], T0)
    doc = await db.endpoint_health.find_one({"_id": health_id(KEY)})
    assert doc is not None and (doc["state"], doc["consecutive_failures"], doc["version"]) == ("closed", 1, 2)
    assert doc["slow_responses"] == 1


async def test_the_endpoint_projection_keeps_the_toggles_and_the_rate_limit(db: Any) -> None:
    endpoints = MongoEndpointRepository(db, cache_seconds=0)
    update = ProfileUpdated(
        profile_id="pro_a",
        merchant_id="merchant_a",
        version=1,
        webhook_url=URL,
        payment_failed_enabled=False,
        payment_succeeded_enabled=True,
        webhook_max_deliveries_per_second=20,
    )
    assert await endpoints.apply(update, None)
    endpoint = await endpoints.get("pro_a")
    assert endpoint is not None and endpoint.disabled_event_types == frozenset({"payment_failed"})
    assert endpoint.max_deliveries_per_second == 20 and endpoint.sends("payment_succeeded")
    assert await endpoints.apply(update.model_copy(update={"version": 2, "payment_failed_enabled": None}), None)
    endpoint = await endpoints.get("pro_a")
    assert endpoint is not None and endpoint.disabled_event_types == frozenset()
