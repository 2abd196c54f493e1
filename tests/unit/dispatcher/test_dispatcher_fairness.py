"""Fairness through the real consumer pipeline on in-memory adapters: a delivery whose endpoint (or merchant) is
busy is parked on a timer instead of waiting while it holds one of the process's in-flight slots, so a slow
endpoint's backlog larger than the global bound never stops another merchant's deliveries; slow endpoints take
their share, not the in-flight bound, and a delivery finding an endpoint that answers promptly busy waits for
its slot instead of being parked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_dispatcher.domain.status import EventStatus
from support.payments import recovery_payment

from .fakes import Dispatcher
from .messages import deliver, endpoint_update, failed, succeeded, succeeded_for

SUCCEEDED, FAILED, DELIVER, PROFILE_UPDATED = (
    "dispatcher.payment-succeeded",
    "dispatcher.payment-failed",
    "dispatcher.deliver-webhook",
    "dispatcher.profile-updated",
)
SLOW_URL, FAST_URL = "https://slow.example/hooks", "https://fast.example/hooks"
IN_FLIGHT, PER_ENDPOINT, PER_MERCHANT = 4, 2, 3
# Wall-clock seconds a delivery may wait for its answer and still count as prompt, and that a delivery finding a
# prompt endpoint busy waits for a slot (longer than production's 50 ms: the machine running the tests is shared).
PROMPT_SECONDS, BUSY_WAIT_SECONDS = 0.2, 0.5


@pytest.fixture
def settings() -> dict[str, Any]:
    return {
        "webhook_retry_schedule_seconds": "60,300",
        "webhook_max_in_flight": IN_FLIGHT,
        "webhook_endpoint_concurrency": PER_ENDPOINT,
        "webhook_merchant_max_in_flight": PER_MERCHANT,
        "webhook_prompt_delivery_seconds": PROMPT_SECONDS,
        "webhook_busy_wait_seconds": BUSY_WAIT_SECONDS,
    }


async def add_endpoint(dispatcher: Dispatcher, merchant_id: str, profile_id: str, url: str) -> None:
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(url=url, profile_id=profile_id, merchant_id=merchant_id))


def hold_timers(dispatcher: Dispatcher) -> list[Envelope[Any]]:
    return [t for t in dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER) if ":hold" in t.payload.timer_id]


async def until_counted(count_of: Callable[[], int], count: int, what: str) -> None:
    """Let the deliveries in flight run (for up to about 2 s) until `count_of()` reaches `count`."""
    for _ in range(2_000):
        if count_of() >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{count_of()} {what}, not {count}")


async def until_parked(dispatcher: Dispatcher, count: int) -> None:
    """Until `count` deliveries are parked (a delivery finding an endpoint of unknown pace busy waits up to
    WEBHOOK_BUSY_WAIT_SECONDS for a slot first)."""
    await until_counted(lambda: len(hold_timers(dispatcher)), count, "deliveries parked")


async def until_requests(dispatcher: Dispatcher, count: int) -> None:
    await until_counted(lambda: len(dispatcher.sender.requests), count, "requests sent")


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
    # The slow endpoint has its slots' worth in flight; the rest of its backlog is parked (acknowledged), after
    # waiting briefly for a slot.
    await until_parked(dispatcher, 3 * IN_FLIGHT - PER_ENDPOINT)
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


# ---- slow endpoints take their share, not the in-flight bound; a busy prompt endpoint is waited for ----------

TIMEOUT_URL = "https://timing-out.example/hooks"


def fast_sent(dispatcher: Dispatcher) -> int:
    return len(dispatcher.sender.sent_to(FAST_URL))


async def test_a_payments_next_event_waiting_behind_its_slow_delivery_holds_no_in_flight_slot(
    dispatcher: Dispatcher,
) -> None:
    """The fault suite's scenario: two slow deliveries and a timing-out one are in flight (3 of the 4 slots), and
    the timing-out merchant's next event of the same payment waits for it in the payment's lane. Waiting there
    holds nothing: the fast merchant's webhook goes out at once (it used to wait for the slow answers)."""
    await add_endpoint(dispatcher, "merchant_slow", "pro_slow", SLOW_URL)
    await add_endpoint(dispatcher, "merchant_timeout", "pro_timeout", TIMEOUT_URL)
    await add_endpoint(dispatcher, "merchant_fast", "pro_fast", FAST_URL)
    slow_gate = dispatcher.sender.gates[SLOW_URL] = asyncio.Event()
    timeout_gate = dispatcher.sender.gates[TIMEOUT_URL] = asyncio.Event()
    reopened = recovery_payment(merchant_id="merchant_timeout", profile_id="pro_timeout")
    sending = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for("merchant_slow", "pro_slow"))) for _ in range(2)
    ]
    sending.append(asyncio.create_task(dispatcher.send(FAILED, failed(reopened))))
    await until_requests(dispatcher, 3)
    sending.append(asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded(reopened))))
    await asyncio.sleep(0.01)  # the second event is in its payment's lane, behind the first
    for _ in range(3):
        await asyncio.wait_for(dispatcher.send(SUCCEEDED, succeeded_for("merchant_fast", "pro_fast")), timeout=0.5)
    assert fast_sent(dispatcher) == 3
    assert len(dispatcher.sender.sent_to(TIMEOUT_URL)) == 1  # the payment's second event waits for its first
    slow_gate.set()
    timeout_gate.set()
    await asyncio.gather(*sending)
    sent = [r.headers["webhook-sequence"] for r in dispatcher.sender.sent_to(TIMEOUT_URL)]
    assert sent == ["1", "2"]


async def test_slow_deliveries_give_their_in_flight_slot_back_after_the_prompt_time(dispatcher: Dispatcher) -> None:
    """Two endpoints of unknown pace take all 4 in-flight slots and do not answer: after the prompt time they
    count as slow instead, and the fast merchant's webhook, which waited for a slot (it is not parked), goes."""
    for name in ("one", "two"):
        url = f"https://{name}.example/hooks"
        await add_endpoint(dispatcher, f"merchant_{name}", f"pro_{name}", url)
        dispatcher.sender.gates[url] = asyncio.Event()
    await add_endpoint(dispatcher, "merchant_fast", "pro_fast", FAST_URL)
    sending = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for(f"merchant_{name}", f"pro_{name}")))
        for name in ("one", "two", "one", "two")
    ]
    await until_requests(dispatcher, IN_FLIGHT)
    # Delivered while the four still wait for their answers (before, it waited for them to be answered).
    await asyncio.wait_for(dispatcher.send(SUCCEEDED, succeeded_for("merchant_fast", "pro_fast")), timeout=5)
    assert fast_sent(dispatcher) == 1
    assert hold_timers(dispatcher) == []
    # Those endpoints are slow now: their next deliveries find them busy and are parked at once.
    await dispatcher.send(SUCCEEDED, succeeded_for("merchant_one", "pro_one"))
    [parked] = [e for e in dispatcher.events.initial_events() if e.status is EventStatus.RETRY_SCHEDULED]
    assert parked.status_reason == f"endpoint busy: {PER_ENDPOINT} deliveries in flight to https://one.example/hooks"
    for gate in dispatcher.sender.gates.values():
        gate.set()
    await asyncio.gather(*sending)


async def test_a_known_slow_endpoint_is_parked_once_the_slow_endpoints_share_is_taken(dispatcher: Dispatcher) -> None:
    """Endpoints whose deliveries took 4 s take from the slow endpoints' share (half the in-flight bound, 2 here)
    and are parked once it is taken, though their own slots are free; a fast endpoint still goes at once."""
    urls = [f"https://slow{n}.example/hooks" for n in range(3)]
    dispatcher.sender.duration_ms = 4000
    for n, url in enumerate(urls):
        await add_endpoint(dispatcher, f"merchant_{n}", f"pro_{n}", url)
        await dispatcher.send(SUCCEEDED, succeeded_for(f"merchant_{n}", f"pro_{n}"))
        dispatcher.sender.gates[url] = asyncio.Event()
    dispatcher.sender.duration_ms = 1
    sending = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for(f"merchant_{n}", f"pro_{n}"))) for n in range(3)
    ]
    await until_parked(dispatcher, 1)
    [parked] = [e for e in dispatcher.events.initial_events() if e.status is EventStatus.RETRY_SCHEDULED]
    assert parked.status_reason == "slow endpoints busy: 2 deliveries in flight to slow endpoints"
    await add_endpoint(dispatcher, "merchant_fast", "pro_fast", FAST_URL)
    await asyncio.wait_for(dispatcher.send(SUCCEEDED, succeeded_for("merchant_fast", "pro_fast")), timeout=0.5)
    for url in urls:
        dispatcher.sender.gates[url].set()
    await asyncio.gather(*sending)


async def test_a_delivery_finding_a_prompt_endpoint_busy_waits_for_a_slot_instead_of_being_parked(
    dispatcher: Dispatcher,
) -> None:
    """A burst to one endpoint that answers in milliseconds: the deliveries beyond its slots (as many again at
    most) wait for the next free one (handed over in arrival order) instead of being parked on a timer, which
    costs a record, a timer and the message again."""
    gate = dispatcher.sender.gates[FAST_URL] = asyncio.Event()
    await add_endpoint(dispatcher, "merchant_fast", "pro_fast", FAST_URL)
    burst = [
        asyncio.create_task(dispatcher.send(SUCCEEDED, succeeded_for("merchant_fast", "pro_fast")))
        for _ in range(2 * PER_ENDPOINT)
    ]
    await until_requests(dispatcher, PER_ENDPOINT)
    await asyncio.sleep(0.01)
    assert len(dispatcher.sender.requests) == PER_ENDPOINT  # the others wait (up to BUSY_WAIT_SECONDS)
    gate.set()
    await asyncio.gather(*burst)
    assert fast_sent(dispatcher) == 2 * PER_ENDPOINT
    assert hold_timers(dispatcher) == []
    assert {e.status for e in dispatcher.events.initial_events()} == {EventStatus.DELIVERED}
