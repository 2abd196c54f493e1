"""Fairness through the real consumer pipeline on in-memory adapters: a delivery whose endpoint (or merchant) is
busy is parked on a timer instead of waiting while it holds one of the process's in-flight slots, so a slow
endpoint's backlog larger than the global bound never stops another merchant's deliveries."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_dispatcher.domain.status import EventStatus

from .fakes import Dispatcher
from .messages import deliver, endpoint_update, succeeded_for

SUCCEEDED, DELIVER, PROFILE_UPDATED = (
    "dispatcher.payment-succeeded",
    "dispatcher.deliver-webhook",
    "dispatcher.profile-updated",
)
SLOW_URL, FAST_URL = "https://slow.example/hooks", "https://fast.example/hooks"
IN_FLIGHT, PER_ENDPOINT, PER_MERCHANT = 4, 2, 3


@pytest.fixture
def settings() -> dict[str, Any]:
    return {
        "webhook_retry_schedule_seconds": "60,300",
        "webhook_max_in_flight": IN_FLIGHT,
        "webhook_endpoint_concurrency": PER_ENDPOINT,
        "webhook_merchant_max_in_flight": PER_MERCHANT,
    }


async def add_endpoint(dispatcher: Dispatcher, merchant_id: str, profile_id: str, url: str) -> None:
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(url=url, profile_id=profile_id, merchant_id=merchant_id))


def hold_timers(dispatcher: Dispatcher) -> list[Envelope[Any]]:
    return [t for t in dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER) if ":hold" in t.payload.timer_id]


async def until_parked(dispatcher: Dispatcher, count: int) -> None:
    """Let the deliveries in flight run until `count` of them are parked."""
    for _ in range(1_000):
        if len(hold_timers(dispatcher)) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(hold_timers(dispatcher))} deliveries parked, not {count}")


async def test_a_fast_merchant_flows_while_a_slow_endpoints_backlog_exceeds_the_global_bound(
    dispatcher: Dispatcher,
) -> None:
    await add_endpoint(dispatcher, "merchant_slow", "pro_slow", SLOW_URL)
    await add_endpoint(dispatcher, "merchant_fast", "pro_fast", FAST_URL)
    # The slow endpoint answers 2xx, but only once released: its deliveries stay in flight until then.
    released = dispatcher.sender.gates[SLOW_URL] = asyncio.Event()
    backlog = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for("merchant_slow", "pro_slow")))
        for _ in range(3 * IN_FLIGHT)
    ]
    for _ in range(3):
        # Each returns once delivered; before parking, the slow backlog held every in-flight slot.
        await asyncio.wait_for(dispatcher.send(SUCCEEDED, succeeded_for("merchant_fast", "pro_fast")), timeout=2)
    assert len(dispatcher.sender.sent_to(FAST_URL)) == 3
    # The slow endpoint has its slots' worth in flight; the rest of its backlog is parked (acknowledged).
    assert len(dispatcher.sender.sent_to(SLOW_URL)) == PER_ENDPOINT
    slow = [e for e in dispatcher.events.initial_events() if e.profile_id == "pro_slow"]
    parked = [e for e in slow if e.status is EventStatus.RETRY_SCHEDULED]
    assert len(parked) == 3 * IN_FLIGHT - PER_ENDPOINT
    assert {(e.retry_index, e.holds, e.attempts) for e in parked} == {(0, 1, 0)}  # not a retry, nothing sent
    assert {e.status_reason for e in parked} == {f"endpoint busy: {PER_ENDPOINT} deliveries in flight to {SLOW_URL}"}
    timers = hold_timers(dispatcher)
    assert len(timers) == len(parked)
    # Parked for the busy hold (5 s of schedule time by default), then spaced by the endpoint's pace: none of its
    # deliveries is over yet, so each is taken to last a hold (2 slots: one per 2.5 s).
    now = dispatcher.clock.now()
    assert [t.payload.due_at for t in timers] == [now + timedelta(seconds=5 + 2.5 * n) for n in range(len(timers))]

    released.set()
    await asyncio.gather(*backlog)
    for timer in timers:
        dispatcher.clock.current = timer.payload.due_at
        await dispatcher.send(DELIVER, deliver(timer.payload.message))
    assert {e.status for e in dispatcher.events.initial_events()} == {EventStatus.DELIVERED}
    # Every slow event went out exactly once.
    assert len({r.headers["webhook-id"] for r in dispatcher.sender.sent_to(SLOW_URL)}) == 3 * IN_FLIGHT
    assert len(dispatcher.sender.sent_to(SLOW_URL)) == 3 * IN_FLIGHT
    assert dispatcher.published.dead_letters == []


async def test_a_parked_backlog_comes_back_spread_over_the_time_the_endpoint_needs(dispatcher: Dispatcher) -> None:
    await add_endpoint(dispatcher, "merchant_slow", "pro_slow", SLOW_URL)
    # One delivery of 4 s: the endpoint drains its 2 slots every 4 s, one delivery per 2 s.
    dispatcher.sender.duration_ms = 4000
    await dispatcher.send(SUCCEEDED, succeeded_for("merchant_slow", "pro_slow"))
    released = dispatcher.sender.gates[SLOW_URL] = asyncio.Event()
    backlog = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for("merchant_slow", "pro_slow"))) for _ in range(6)
    ]
    await until_parked(dispatcher, 4)
    now = dispatcher.clock.now()
    assert [t.payload.due_at for t in hold_timers(dispatcher)] == [now + timedelta(seconds=s) for s in (5, 7, 9, 11)]
    released.set()
    await asyncio.gather(*backlog)


async def test_a_merchant_has_at_most_its_cap_in_flight_across_its_endpoints(dispatcher: Dispatcher) -> None:
    urls = {"pro_one": "https://one.example/hooks", "pro_two": "https://two.example/hooks"}
    for profile_id, url in urls.items():
        await add_endpoint(dispatcher, "merchant_multi", profile_id, url)
        dispatcher.sender.gates[url] = asyncio.Event()
    sending = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for("merchant_multi", profile_id)))
        for profile_id in ("pro_one", "pro_two", "pro_one", "pro_two")
    ]
    await until_parked(dispatcher, 1)
    # Room on the second endpoint (1 of 2), none for the merchant (3 of 3).
    assert len(dispatcher.sender.requests) == PER_MERCHANT
    [parked] = [e for e in dispatcher.events.initial_events() if e.status is EventStatus.RETRY_SCHEDULED]
    assert parked.profile_id == "pro_two"
    assert parked.status_reason == f"merchant busy: {PER_MERCHANT} deliveries in flight"
    for gate in dispatcher.sender.gates.values():
        gate.set()
    await asyncio.gather(*sending)
    # Slots go back once deliveries are over: the merchant delivers again.
    await dispatcher.send(SUCCEEDED, succeeded_for("merchant_multi", "pro_one"))
    assert len(dispatcher.sender.requests) == PER_MERCHANT + 1
