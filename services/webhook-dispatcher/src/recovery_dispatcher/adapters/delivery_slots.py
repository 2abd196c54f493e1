"""Which deliveries may start now in this dispatcher process, and until when the others are parked.

The bounds, in this process's memory, taken in this order (a delivery never waits on a later one while holding
nothing, and never waits at all on a slow endpoint):

1. its endpoint's slots (profile, URL): a free one, or, when they are all taken and the endpoint answers
   promptly, the next one to come free within `busy_wait` (handed over in arrival order; at most as many
   deliveries wait as the endpoint has slots); otherwise it is parked;
2. its merchant's deliveries in flight, and the endpoint's rate limit (a token bucket; each dispatcher allows
   the profile's rate, so N dispatchers may send up to N times it): parked when either is used up;
3. one of two pools. An endpoint that answers promptly takes one of the `max_in_flight` slots the prompt
   endpoints share (WEBHOOK_MAX_IN_FLIGHT), waiting for one if need be: they turn over within `prompt_seconds`.
   A slow endpoint (one of its deliveries has been waiting for its answer longer than `prompt_seconds`, or its
   deliveries take that long on average) takes from the slow endpoints' share (`slow_max_in_flight`) instead,
   and is parked when that is used up. A delivery still waiting for its answer after `prompt_seconds` gives its
   prompt slot back and counts in the slow share from then on (even beyond it: it is in flight), so a slow or
   dead endpoint holds a shared slot for `prompt_seconds` at most, not for its request timeout.

A parked delivery waits on a durable timer and holds nothing meanwhile: no slot, nor the broker's prefetch (its
message is acknowledged), so a slow endpoint's backlog never stands in front of another merchant's deliveries.

Memory: one entry per endpoint delivered to lately (a TtlCache of `max_endpoints`, an idle one expires after
`idle_seconds`); a merchant's count is dropped at zero (at most one per delivery in flight).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from recovery_dispatcher import metrics
from recovery_dispatcher.domain.breaker import EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.fairness import Busy, BusyReason, Parking, TokenBucket, is_slow, worth_waiting
from recovery_runtime.ttl_cache import TtlCache

# How much one delivery's duration moves an endpoint's mean (an exponentially weighted moving average).
_MEAN_WEIGHT = 0.2


@dataclass(slots=True)
class _Load:
    """One endpoint as this process sees it."""

    in_flight: int = 0
    # Deliveries in flight that have waited for their answer longer than the prompt time.
    overdue: int = 0
    # Mean wall-clock seconds of a delivery (its attempts together): how fast a parked backlog can drain.
    mean_seconds: float = 0.0
    bucket: TokenBucket | None = None
    parking: Parking = field(default_factory=Parking)
    # Deliveries waiting for one of the endpoint's slots, in arrival order: True is set on the one handed a slot,
    # False on one whose wait ran out.
    waiting: deque[asyncio.Future[bool]] = field(default_factory=deque)


class _Pool(Enum):
    """Which count a delivery in flight is in."""

    NONE = 0  # not in a pool yet (or released)
    PROMPT = 1  # one of the prompt endpoints' slots (WEBHOOK_MAX_IN_FLIGHT)
    SLOW = 2  # the slow endpoints' share, taken as such
    OVERDUE = 3  # took a prompt slot and gave it back after the prompt time: counted in the slow share


class Slot:
    """A delivery's place in the bounds; `release` it with the delivery's duration once its attempts are over."""

    __slots__ = ("load", "merchant_id", "overdue_timer", "pool", "slots")

    def __init__(self, slots: DeliverySlots, load: _Load, merchant_id: str) -> None:
        self.slots, self.load, self.merchant_id = slots, load, merchant_id
        self.pool = _Pool.NONE
        self.overdue_timer: asyncio.TimerHandle | None = None

    def release(self, seconds: float | None) -> None:
        """The delivery is over: it took `seconds` (None: nothing was sent)."""
        self.slots.finished(self, seconds)


class DeliverySlots:
    """`per_endpoint` and `per_merchant` deliveries in flight at most; `max_in_flight` to prompt endpoints and
    `slow_max_in_flight` to slow ones; a delivery finding its prompt endpoint busy waits up to `busy_wait`
    seconds; a parked delivery comes back after `min_hold` at the soonest and `max_hold` at the latest
    (wall-clock, scaled already)."""

    def __init__(
        self,
        *,
        per_endpoint: int,
        per_merchant: int,
        max_in_flight: int,
        slow_max_in_flight: int,
        prompt_seconds: float,
        busy_wait: float,
        min_hold: timedelta,
        max_hold: timedelta,
        max_endpoints: int = 10_000,
        idle_seconds: float = 600.0,
    ) -> None:
        self._per_endpoint = per_endpoint
        self._per_merchant = per_merchant
        self._prompt = asyncio.Semaphore(max_in_flight)
        self._slow_max = slow_max_in_flight
        self._slow_in_flight = 0
        self._prompt_seconds = prompt_seconds
        self._busy_wait = busy_wait
        self._min_hold = min_hold
        self._max_hold = max_hold
        self._loads: TtlCache[EndpointKey, _Load] = TtlCache(idle_seconds, max_endpoints)
        self._merchants: dict[str, int] = {}

    def endpoints_held(self) -> int:
        """Endpoints this process keeps state for (bounded by `max_endpoints`)."""
        return len(self._loads)

    def slow_in_flight(self) -> int:
        """Deliveries in flight to slow endpoints (the slow endpoints' share, and the overdue ones)."""
        return self._slow_in_flight

    async def take(self, endpoint: Endpoint, merchant_id: str, now: datetime) -> Slot | Busy:
        key = endpoint.key
        load = self._loads.get(key) or _Load()
        # Put back on every take: an endpoint in use never expires.
        self._loads.put(key, load)
        if load.in_flight < self._per_endpoint:
            load.in_flight += 1
        elif self._slow(load) or not await self._wait_for_endpoint(load):
            reason = f"endpoint busy: {load.in_flight} deliveries in flight to {key[1]}"
            return self._park(load, now, BusyReason.ENDPOINT_BUSY, reason, now + self._min_hold)
        # The endpoint's slot is held from here: a delivery parked below gives it back.
        if self._merchants.get(merchant_id, 0) >= self._per_merchant:
            self._endpoint_done(load)
            reason = f"merchant busy: {self._per_merchant} deliveries in flight"
            return self._park(load, now, BusyReason.MERCHANT_BUSY, reason, now + self._min_hold)
        slow = self._slow(load)
        if slow and self._slow_in_flight >= self._slow_max:
            self._endpoint_done(load)
            reason = f"slow endpoints busy: {self._slow_in_flight} deliveries in flight to slow endpoints"
            return self._park(load, now, BusyReason.SLOW_SHARE_FULL, reason, now + self._min_hold)
        rate = endpoint.max_deliveries_per_second
        if rate is not None:
            bucket = load.bucket
            if bucket is None or bucket.rate != rate:
                bucket = TokenBucket.full(rate, now)
            taken = bucket.take(now)
            if taken is None:
                self._endpoint_done(load)
                reason = f"rate limit: {rate} deliveries per second to {key[1]}"
                spacing = timedelta(seconds=1 / rate)
                return self._park(load, now, BusyReason.RATE_LIMITED, reason, bucket.next_token_at(now), spacing)
            load.bucket = taken
        self._merchants[merchant_id] = self._merchants.get(merchant_id, 0) + 1
        slot = Slot(self, load, merchant_id)
        if slow:
            slot.pool = _Pool.SLOW
            self._slow_in_flight += 1
            return slot
        try:
            # Prompt endpoints' slots turn over within the prompt time (an overdue delivery gives its slot back).
            await self._prompt.acquire()
        except BaseException:
            self.finished(slot, None)
            raise
        slot.pool = _Pool.PROMPT
        slot.overdue_timer = asyncio.get_running_loop().call_later(self._prompt_seconds, self._overdue, slot)
        return slot

    def finished(self, slot: Slot, seconds: float | None) -> None:
        """`slot`'s delivery is over: it took `seconds` (None: nothing was sent)."""
        load, pool = slot.load, slot.pool
        if slot.overdue_timer is not None:
            slot.overdue_timer.cancel()
        if pool is _Pool.PROMPT:
            self._prompt.release()
        elif pool is not _Pool.NONE:
            self._slow_in_flight -= 1
            if pool is _Pool.OVERDUE:
                load.overdue -= 1
        slot.pool = _Pool.NONE
        if seconds is not None:
            mean = load.mean_seconds
            load.mean_seconds = seconds if not mean else mean + _MEAN_WEIGHT * (seconds - mean)
        self._merchant_done(slot.merchant_id)
        self._endpoint_done(load)

    def _overdue(self, slot: Slot) -> None:
        """Still waiting for its answer after the prompt time: the shared slot goes back, the endpoint is slow."""
        if slot.pool is not _Pool.PROMPT:
            return
        slot.pool, slot.overdue_timer = _Pool.OVERDUE, None
        self._prompt.release()
        self._slow_in_flight += 1
        slot.load.overdue += 1

    def _slow(self, load: _Load) -> bool:
        return is_slow(mean_seconds=load.mean_seconds, overdue=load.overdue, prompt_seconds=self._prompt_seconds)

    async def _wait_for_endpoint(self, load: _Load) -> bool:
        """Wait briefly for one of a prompt endpoint's slots (True: handed one), rather than park on a timer,
        which costs a record, a timer and the delivery's message again."""
        expected = worth_waiting(
            ahead=len(load.waiting),
            mean_seconds=load.mean_seconds,
            slots=self._per_endpoint,
            budget_seconds=self._busy_wait,
        )
        if not expected:
            return False
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        load.waiting.append(turn)
        timer = loop.call_later(self._busy_wait, _expire, turn)
        try:
            granted = await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.result():
                self._endpoint_done(load)  # handed a slot it will not use: on to the next
            raise
        finally:
            timer.cancel()
        if not granted and turn in load.waiting:
            load.waiting.remove(turn)
        return granted

    def _endpoint_done(self, load: _Load) -> None:
        """An endpoint slot comes free: to the first delivery waiting for it, else back to the endpoint."""
        waiting = load.waiting
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(True)
                return
        load.in_flight -= 1

    def _merchant_done(self, merchant_id: str) -> None:
        left = self._merchants.get(merchant_id, 1) - 1
        if left > 0:
            self._merchants[merchant_id] = left
        else:
            self._merchants.pop(merchant_id, None)

    def _park(
        self,
        load: _Load,
        now: datetime,
        why: BusyReason,
        reason: str,
        not_before: datetime,
        spacing: timedelta | None = None,
    ) -> Busy:
        if spacing is None:
            # The endpoint drains its slots' worth of deliveries per mean delivery (before its first delivery is
            # over, take it to last a hold).
            mean = timedelta(seconds=load.mean_seconds) if load.mean_seconds else self._min_hold
            spacing = mean / self._per_endpoint
        due, load.parking = load.parking.park(now, not_before=not_before, spacing=spacing, max_hold=self._max_hold)
        metrics.deliveries_parked(why).inc()
        return Busy(why, due, reason)


def _expire(turn: asyncio.Future[bool]) -> None:
    if not turn.done():
        turn.set_result(False)
