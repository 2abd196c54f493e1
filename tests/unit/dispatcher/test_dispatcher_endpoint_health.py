"""Endpoint health through the real consumer pipeline on in-memory adapters: breakers per (profile, URL) in a
shared repository (compare-and-set), no write for a healthy endpoint, the probe to one dispatcher only, slow
answers counted, the per-endpoint rate limit, and what stays in memory bounded."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_dispatcher.adapters.delivery_slots import DeliverySlots, Slot
from recovery_dispatcher.adapters.read_through import ReadThrough
from recovery_dispatcher.domain.breaker import CircuitBreaker, CircuitState, EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.status import EventStatus

from .fakes import Dispatcher
from .messages import URL, deliver, endpoint_update, succeeded, succeeded_for

SUCCEEDED, DELIVER, PROFILE_UPDATED = (
    "dispatcher.payment-succeeded",
    "dispatcher.deliver-webhook",
    "dispatcher.profile-updated",
)
SHARED_URL = "https://shared.example/hooks"
FAILURES = 3
COOLDOWN = timedelta(seconds=30)
KEY: EndpointKey = ("pro_test", URL)


@pytest.fixture
def settings() -> dict[str, Any]:
    return {
        "webhook_retry_schedule_seconds": "60,300",
        "webhook_breaker_failures": FAILURES,
        "webhook_breaker_cooldown_seconds": COOLDOWN.total_seconds(),
    }


def hold_timers(dispatcher: Dispatcher) -> list[Envelope[Any]]:
    return [t for t in dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER) if ":hold" in t.payload.timer_id]


def opened_elsewhere(at: datetime, version: int = 4) -> CircuitBreaker:
    """A breaker another dispatcher opened at `at` (and stored)."""
    return CircuitBreaker(
        state=CircuitState.OPEN, consecutive_failures=FAILURES, opened_at=at, cooldown=COOLDOWN, version=version
    )


async def test_one_merchants_failures_do_not_open_another_merchants_breaker_on_the_same_url(
    dispatcher: Dispatcher,
) -> None:
    # Merchant A points its profile at merchant B's URL and makes it fail.
    for merchant, profile in (("merchant_a", "pro_a"), ("merchant_b", "pro_b")):
        await dispatcher.send(
            PROFILE_UPDATED, endpoint_update(url=SHARED_URL, profile_id=profile, merchant_id=merchant)
        )
    dispatcher.sender.answer(*[500] * FAILURES)
    for _ in range(FAILURES):
        await dispatcher.send(SUCCEEDED, succeeded_for("merchant_a", "pro_a"))
    # A's next delivery is held by A's open circuit...
    await dispatcher.send(SUCCEEDED, succeeded_for("merchant_a", "pro_a"))
    assert len(dispatcher.sender.requests) == FAILURES
    # ... B's goes out to the same URL and is delivered.
    await dispatcher.send(SUCCEEDED, succeeded_for("merchant_b", "pro_b"))
    assert len(dispatcher.sender.requests) == FAILURES + 1
    [b_event] = [e for e in dispatcher.events.initial_events() if e.profile_id == "pro_b"]
    assert b_event.status is EventStatus.DELIVERED
    assert dispatcher.breakers.breakers[("pro_a", SHARED_URL)].state is CircuitState.OPEN
    assert ("pro_b", SHARED_URL) not in dispatcher.breakers.breakers


async def test_a_healthy_endpoint_costs_no_breaker_write(dispatcher: Dispatcher) -> None:
    for _ in range(5):
        await dispatcher.send(SUCCEEDED, succeeded())
    assert dispatcher.breakers.saves == 0 and dispatcher.breakers.breakers == {}


async def test_a_circuit_another_dispatcher_opened_holds_deliveries_here_until_its_probe(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.breakers.breakers[KEY] = opened_elsewhere(dispatcher.clock.now())
    await dispatcher.send(SUCCEEDED, succeeded())
    assert dispatcher.sender.requests == []
    [event] = dispatcher.events.initial_events()
    assert event.status is EventStatus.RETRY_SCHEDULED and event.status_reason == f"circuit open for {URL}"
    [timer] = hold_timers(dispatcher)
    assert timer.payload.due_at == dispatcher.clock.now() + COOLDOWN

    dispatcher.clock.advance(COOLDOWN)
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    # This dispatcher stored the half-open state and sent the probe; it succeeded and closed the circuit.
    assert len(dispatcher.sender.requests) == 1
    assert dispatcher.breakers.breakers[KEY].state is CircuitState.CLOSED
    assert dispatcher.breakers.breakers[KEY].version == 6  # half-open, then closed: two compare-and-sets


async def test_the_probe_goes_out_from_one_dispatcher_only(dispatcher: Dispatcher) -> None:
    dispatcher.breakers.breakers[KEY] = opened_elsewhere(dispatcher.clock.now() - COOLDOWN)

    def another_dispatcher_takes_the_probe(
        key: EndpointKey, before: CircuitBreaker, after: CircuitBreaker, now: datetime
    ) -> None:
        if after.state is CircuitState.HALF_OPEN:
            dispatcher.breakers.breakers[key] = replace(after, version=before.version + 1)

    dispatcher.breakers.before_save = another_dispatcher_takes_the_probe
    await dispatcher.send(SUCCEEDED, succeeded())
    # Its compare-and-set lost: the other dispatcher's probe is out, this delivery is held, not sent beside it.
    assert dispatcher.sender.requests == [] and dispatcher.breakers.saves == 0
    [event] = dispatcher.events.initial_events()
    assert event.status is EventStatus.RETRY_SCHEDULED and event.status_reason == f"circuit open for {URL}"


async def test_slow_answers_are_counted_in_the_endpoints_health(dispatcher: Dispatcher) -> None:
    dispatcher.sender.duration_ms = 5_000  # WEBHOOK_SLOW_RESPONSE_SECONDS: 5
    await dispatcher.send(SUCCEEDED, succeeded())
    dispatcher.sender.duration_ms = 4_999
    await dispatcher.send(SUCCEEDED, succeeded())
    assert dispatcher.breakers.slow == {KEY: 1}
    # A slow 2xx is still a success: the breaker is untouched.
    assert dispatcher.breakers.saves == 0


async def test_a_profiles_rate_limit_parks_what_exceeds_it_spaced_at_the_rate(dispatcher: Dispatcher) -> None:
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, webhook_max_deliveries_per_second=2))
    for _ in range(5):
        await dispatcher.send(SUCCEEDED, succeeded())
    # A burst of one second's worth goes at once; the rest come back at the rate.
    assert len(dispatcher.sender.requests) == 2
    now = dispatcher.clock.now()
    timers = hold_timers(dispatcher)
    assert [t.payload.due_at for t in timers] == [now + timedelta(seconds=s) for s in (0.5, 1.0, 1.5)]
    parked = [e for e in dispatcher.events.initial_events() if e.status is EventStatus.RETRY_SCHEDULED]
    assert {e.status_reason for e in parked} == {f"rate limit: 2 deliveries per second to {URL}"}
    for timer in timers:
        dispatcher.clock.current = timer.payload.due_at
        await dispatcher.send(DELIVER, deliver(timer.payload.message))
    assert len(dispatcher.sender.requests) == 5
    assert {e.status for e in dispatcher.events.initial_events()} == {EventStatus.DELIVERED}


async def test_what_stays_in_memory_is_bounded() -> None:
    now = datetime(2026, 12, 3, 12, 0)
    slots = DeliverySlots(
        per_endpoint=2,
        per_merchant=2,
        max_in_flight=4,
        slow_max_in_flight=2,
        prompt_seconds=1.0,
        busy_wait=0.05,
        min_hold=timedelta(seconds=5),
        max_hold=timedelta(minutes=10),
        max_endpoints=100,
    )
    for n in range(1_000):
        slot = await slots.take(Endpoint(f"pro_{n}", url=f"https://m{n}.example/"), f"merchant_{n}", now)
        assert isinstance(slot, Slot)
        slot.release(0.01)
    assert slots.endpoints_held() == 100

    async def read(key: int) -> int:
        return key

    cache: ReadThrough[int, int] = ReadThrough(read, ttl_seconds=60, max_entries=100)
    for key in range(1_000):
        assert await cache.get(key) == key
    assert len(cache) == 100
