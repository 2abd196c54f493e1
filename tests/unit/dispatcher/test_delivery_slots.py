"""The dispatcher's in-process bounds on their own: which endpoints count as slow, when a delivery waits for a
busy endpoint rather than being parked, slots handed over in arrival order, and a delivery that waits too long
for its answer giving its in-flight slot back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from recovery_dispatcher.adapters.delivery_slots import DeliverySlots, Slot
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.fairness import Busy, BusyReason, is_slow, worth_waiting

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ENDPOINT = Endpoint("pro_a", url="https://a.example/hooks")
OTHER = Endpoint("pro_b", url="https://b.example/hooks")
BUSY_WAIT, PROMPT = 0.05, 0.1


def bounds(
    *,
    per_endpoint: int = 2,
    max_in_flight: int = 4,
    slow_max: int = 2,
    busy_wait: float = BUSY_WAIT,
    prompt: float = PROMPT,
) -> DeliverySlots:
    return DeliverySlots(
        per_endpoint=per_endpoint,
        per_merchant=100,
        max_in_flight=max_in_flight,
        slow_max_in_flight=slow_max,
        prompt_seconds=prompt,
        busy_wait=busy_wait,
        min_hold=timedelta(seconds=5),
        max_hold=timedelta(minutes=10),
    )


async def taken(slots: DeliverySlots, endpoint: Endpoint = ENDPOINT) -> Slot:
    slot = await slots.take(endpoint, "merchant_a", NOW)
    assert isinstance(slot, Slot), slot
    return slot


@pytest.mark.parametrize(
    ("mean_seconds", "overdue", "slow"),
    [(0.0, 0, False), (0.5, 0, False), (1.0, 0, True), (12.0, 0, True), (0.01, 1, True)],
)
def test_an_endpoint_is_slow_when_its_deliveries_take_the_prompt_time(
    mean_seconds: float, overdue: int, slow: bool
) -> None:
    assert is_slow(mean_seconds=mean_seconds, overdue=overdue, prompt_seconds=1.0) is slow


@pytest.mark.parametrize(
    ("ahead", "mean_seconds", "slots", "budget", "wait"),
    [
        (0, 0.0, 16, 0.05, True),  # pace unknown yet: the budget is given
        (0, 0.010, 16, 0.05, True),
        (15, 0.010, 16, 0.05, True),  # 16 x 10 ms / 16 = 10 ms
        (15, 0.060, 16, 0.05, False),  # 60 ms
        (16, 0.001, 16, 0.05, False),  # as many waiting as the endpoint has slots already
        (15, 0.400, 16, 0.5, True),  # 400 ms answers (a loaded machine), 16 slots: the next one in 25 ms
        (0, 0.2, 2, 0.05, False),  # 100 ms for the next free slot
        (0, 0.0, 16, 0.0, False),  # waiting switched off
    ],
)
def test_a_delivery_waits_for_a_busy_endpoint_only_when_its_slot_is_expected_within_the_budget(
    ahead: int, mean_seconds: float, slots: int, budget: float, wait: bool
) -> None:
    assert worth_waiting(ahead=ahead, mean_seconds=mean_seconds, slots=slots, budget_seconds=budget) is wait


async def test_a_freed_endpoint_slot_goes_to_the_first_waiting_delivery() -> None:
    slots = bounds()
    first, second = await taken(slots), await taken(slots)
    waiting = [asyncio.create_task(slots.take(ENDPOINT, "merchant_a", NOW)) for _ in range(2)]
    await asyncio.sleep(0)
    first.release(0.001)
    await asyncio.sleep(0.001)
    assert waiting[0].done() and isinstance(waiting[0].result(), Slot)
    assert not waiting[1].done()
    second.release(0.001)
    assert isinstance(await waiting[1], Slot)


async def test_a_delivery_is_parked_when_no_endpoint_slot_comes_free_within_the_wait() -> None:
    slots = bounds()
    await taken(slots)
    await taken(slots)
    started = asyncio.get_running_loop().time()
    busy = await slots.take(ENDPOINT, "merchant_a", NOW)
    assert isinstance(busy, Busy) and busy.why is BusyReason.ENDPOINT_BUSY
    assert asyncio.get_running_loop().time() - started >= BUSY_WAIT * 0.9


async def test_an_endpoint_slower_than_the_wait_is_parked_at_once() -> None:
    slots = bounds(busy_wait=2.0, prompt=10.0)
    done = await taken(slots)
    done.release(6.0)  # 6 s a delivery (prompt still), 2 slots: the next one comes free in about 3 s
    await taken(slots)
    await taken(slots)
    started = asyncio.get_running_loop().time()
    busy = await slots.take(ENDPOINT, "merchant_a", NOW)
    assert isinstance(busy, Busy) and busy.why is BusyReason.ENDPOINT_BUSY
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_cancelled_wait_hands_the_slot_on() -> None:
    slots = bounds()
    first = await taken(slots)
    await taken(slots)
    cancelled = asyncio.create_task(slots.take(ENDPOINT, "merchant_a", NOW))
    after = asyncio.create_task(slots.take(ENDPOINT, "merchant_a", NOW))
    await asyncio.sleep(0)
    cancelled.cancel()
    first.release(0.001)
    assert isinstance(await after, Slot)


async def test_a_delivery_waiting_for_its_answer_past_the_prompt_time_gives_its_in_flight_slot_back() -> None:
    slots = bounds(per_endpoint=4, max_in_flight=2)
    stuck = [await taken(slots), await taken(slots)]
    # Both in-flight slots are taken: another endpoint's delivery waits for one...
    other = asyncio.create_task(slots.take(OTHER, "merchant_b", NOW))
    await asyncio.sleep(0)
    assert not other.done()
    # ...until the stuck ones pass the prompt time and count as slow instead.
    assert isinstance(await asyncio.wait_for(other, timeout=PROMPT * 3), Slot)
    assert slots.slow_in_flight() == 2
    # Their endpoint is slow now: it takes from the slow share (2, taken), so its next delivery is parked.
    busy = await slots.take(ENDPOINT, "merchant_a", NOW)
    assert isinstance(busy, Busy) and busy.why is BusyReason.SLOW_SHARE_FULL
    for slot in stuck:
        slot.release(PROMPT * 2)
    assert slots.slow_in_flight() == 0


async def test_slots_released_before_the_prompt_time_stay_prompt() -> None:
    slots = bounds(max_in_flight=1)
    for _ in range(3):
        (await taken(slots)).release(0.001)
    await asyncio.sleep(PROMPT * 1.5)
    assert slots.slow_in_flight() == 0
    assert isinstance(await slots.take(OTHER, "merchant_b", NOW), Slot)
