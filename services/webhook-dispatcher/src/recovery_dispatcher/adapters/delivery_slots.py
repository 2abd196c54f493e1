"""Which deliveries may start now in this dispatcher process, and until when the others are parked.

The bounds, in this process's memory: deliveries in flight per endpoint (profile, URL) and per merchant, and the
endpoint's rate limit (a token bucket; each dispatcher allows the profile's rate, so N dispatchers may send up
to N times it). A delivery that may not start is parked on a durable timer and holds nothing meanwhile: neither
a slot of the runtime's in-flight bound nor the broker's prefetch (its message is acknowledged), so a slow
endpoint's backlog never stands in front of another merchant's deliveries.

Memory: one entry per endpoint delivered to lately (a TtlCache of `max_endpoints`, an idle one expires after
`idle_seconds`); a merchant's count is dropped at zero (at most one per delivery in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from recovery_dispatcher import metrics
from recovery_dispatcher.domain.breaker import EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.fairness import Busy, BusyReason, Parking, TokenBucket
from recovery_runtime.ttl_cache import TtlCache

# How much one delivery's duration moves an endpoint's mean (an exponentially weighted moving average).
_MEAN_WEIGHT = 0.2


@dataclass(slots=True)
class _Load:
    """One endpoint as this process sees it."""

    in_flight: int = 0
    # Mean wall-clock seconds of a delivery (its attempts together): how fast a parked backlog can drain.
    mean_seconds: float = 0.0
    bucket: TokenBucket | None = None
    parking: Parking = field(default_factory=Parking)


class Slot:
    """A delivery's place in the bounds; `release` it with the delivery's duration once its attempts are over."""

    __slots__ = ("_load", "_merchant_id", "_merchants")

    def __init__(self, load: _Load, merchant_id: str, merchants: dict[str, int]) -> None:
        self._load, self._merchant_id, self._merchants = load, merchant_id, merchants

    def release(self, seconds: float | None) -> None:
        """The delivery is over: it took `seconds` (None: nothing was sent)."""
        load = self._load
        load.in_flight -= 1
        if seconds is not None:
            mean = load.mean_seconds
            load.mean_seconds = seconds if not mean else mean + _MEAN_WEIGHT * (seconds - mean)
        left = self._merchants.get(self._merchant_id, 1) - 1
        if left > 0:
            self._merchants[self._merchant_id] = left
        else:
            self._merchants.pop(self._merchant_id, None)


class DeliverySlots:
    """`per_endpoint` and `per_merchant` deliveries in flight at most; a parked delivery comes back after
    `min_hold` at the soonest and `max_hold` at the latest (wall-clock, scaled already)."""

    def __init__(
        self,
        *,
        per_endpoint: int,
        per_merchant: int,
        min_hold: timedelta,
        max_hold: timedelta,
        max_endpoints: int = 10_000,
        idle_seconds: float = 600.0,
    ) -> None:
        self._per_endpoint = per_endpoint
        self._per_merchant = per_merchant
        self._min_hold = min_hold
        self._max_hold = max_hold
        self._loads: TtlCache[EndpointKey, _Load] = TtlCache(idle_seconds, max_endpoints)
        self._merchants: dict[str, int] = {}

    def endpoints_held(self) -> int:
        """Endpoints this process keeps state for (bounded by `max_endpoints`)."""
        return len(self._loads)

    def take(self, endpoint: Endpoint, merchant_id: str, now: datetime) -> Slot | Busy:
        key = endpoint.key
        load = self._loads.get(key) or _Load()
        # Put back on every take: an endpoint in use never expires.
        self._loads.put(key, load)
        if load.in_flight >= self._per_endpoint:
            reason = f"endpoint busy: {load.in_flight} deliveries in flight to {key[1]}"
            return self._park(load, now, BusyReason.ENDPOINT_BUSY, reason, now + self._min_hold)
        if self._merchants.get(merchant_id, 0) >= self._per_merchant:
            reason = f"merchant busy: {self._per_merchant} deliveries in flight"
            return self._park(load, now, BusyReason.MERCHANT_BUSY, reason, now + self._min_hold)
        rate = endpoint.max_deliveries_per_second
        if rate is not None:
            bucket = load.bucket
            if bucket is None or bucket.rate != rate:
                bucket = TokenBucket.full(rate, now)
            taken = bucket.take(now)
            if taken is None:
                reason = f"rate limit: {rate} deliveries per second to {key[1]}"
                spacing = timedelta(seconds=1 / rate)
                return self._park(load, now, BusyReason.RATE_LIMITED, reason, bucket.next_token_at(now), spacing)
            load.bucket = taken
        load.in_flight += 1
        self._merchants[merchant_id] = self._merchants.get(merchant_id, 0) + 1
        return Slot(load, merchant_id, self._merchants)

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
