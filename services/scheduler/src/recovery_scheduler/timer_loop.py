"""The loop that fires due timers: claim a batch under a lease, publish or re-plan, mark fired."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter, Histogram

from recovery_runtime.bus import OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
from recovery_scheduler.adapters.timers import TimerKind, TimerRepository

log = structlog.get_logger(__name__)

TIMERS_FIRED = Counter("recovery_timers_fired_total", "Timers fired", ["purpose"])
TIMER_LATENESS = Histogram(
    "recovery_timer_lateness_seconds",
    "Wall-clock delay between a timer's due time and its firing",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


class TimerLoop:
    def __init__(
        self,
        timers: TimerRepository,
        publisher: Publisher,
        replan: Callable[[str], Awaitable[None]],
        clock: Clock,
        owner: str,
        *,
        poll_seconds: float,
        batch_size: int,
        lease: timedelta,
    ) -> None:
        self._timers = timers
        self._publisher = publisher
        self._replan = replan
        self._clock = clock
        self._owner = owner
        self._poll = poll_seconds
        self._batch = batch_size
        self._lease = lease
        self._next_release: datetime | None = None

    async def fire_due(self) -> int:
        now = self._clock.now()
        # Expired leases (an instance died holding timers) are looked for a few times per lease period, not on
        # every poll: one round trip saved per poll, and a dead instance's timers still fire within a lease.
        if self._next_release is None or now >= self._next_release:
            await self._timers.release_expired(now)
            self._next_release = now + self._lease / 4
        claimed = await self._timers.claim_due(now, self._owner, self._lease, self._batch)
        if not claimed:
            return 0
        messages = [OutgoingMessage.from_document(t["message"]) for t in claimed if t["kind"] == TimerKind.MESSAGE]
        # Publish first, then mark fired: a crash in between republishes (consumers de-duplicate by id).
        await self._publisher.publish_many(messages)
        for timer in claimed:
            if timer["kind"] == TimerKind.REPLAN and timer.get("payment_id"):
                await self._replan(timer["payment_id"])
        fired_at = self._clock.now()
        await self._timers.mark_fired([t["_id"] for t in claimed], self._owner, fired_at)
        for timer in claimed:
            TIMERS_FIRED.labels(timer.get("purpose") or timer["kind"]).inc()
            TIMER_LATENESS.observe(max((fired_at - timer["due_at"]).total_seconds(), 0.0))
        log.info("timers.fired", count=len(claimed))
        return len(claimed)

    async def run(self) -> None:
        while True:
            try:
                fired = await self.fire_due()
            except Exception:
                log.warning("timers.fire_failed", exc_info=True)
                fired = 0
            if fired < self._batch:
                await asyncio.sleep(self._poll)
