"""The loop that fires due timers: claim a batch (adapters/timers.py `claim_due`), publish or re-plan, complete.

Adaptive polling: each claim also returns the earliest pending timer falling due within the next poll interval,
and the loop sleeps exactly until then (or the full interval when none is near, or not at all while a full batch
came back). A timer already stored fires within a few milliseconds of its due time plus the claim's own round
trips. A timer this process stores due sooner than the next poll is reported by its writer once committed
(`timer_stored`, from `Transaction.after_commit`), and the loop claims at its due time instead of waiting for the
poll: the ordinary claim, nothing read to decide (at moderate rates a claim then carries fewer timers than a poll's
would), and any number of instances still share the timers through the claim's compare-and-set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter, Histogram

from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.tracing import continued
from recovery_scheduler.dependencies import Claim, TimerClaims
from recovery_scheduler.domain.timers import TimerKind

log = structlog.get_logger(__name__)

TIMERS_FIRED = Counter("recovery_timers_fired_total", "Timers fired", ["purpose"])
TIMER_LATENESS = Histogram(
    "recovery_timer_lateness_seconds",
    "Wall-clock delay between a timer's due time and its firing",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TIMER_BATCH = Histogram(
    "recovery_timer_batch_size", "Timers claimed per batch", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
)

# Never sleep less than this between polls that found work (a busy database gets a moment to breathe).
MIN_SLEEP_SECONDS = 0.002
# How long a stopping loop waits for the batch it is publishing.
SHUTDOWN_GRACE_SECONDS = 5.0
# The narrowest window of due times walked through a backlog.
MIN_SPAN = timedelta(milliseconds=10)


class TimerLoop:
    def __init__(
        self,
        timers: TimerClaims,
        publisher: Publisher,
        replan: Callable[[str], Awaitable[None]],
        clock: Clock,
        owner: str,
        *,
        poll_seconds: float,
        batch_size: int,
        lease: timedelta,
        release_every: timedelta | None = None,
    ) -> None:
        self._timers = timers
        self._publisher = publisher
        self._replan = replan
        self._clock = clock
        self._owner = owner
        self._poll = poll_seconds
        self._batch = batch_size
        self._lease = lease
        # Expired claims (an instance died holding timers) are looked for a few times per lease period, not on
        # every poll: a dead instance's timers fire again within lease + release_every.
        self._release_every = release_every if release_every is not None else lease / 4
        self._next_release: datetime | None = None
        self._next_due: datetime | None = None
        # Catching up through a backlog: the due time claimed up to, and the width of the next window.
        self._cursor: datetime | None = None
        self._span = MIN_SPAN
        self._full = False
        # When the sleeping loop claims next; None while it claims. Writers move it earlier (`timer_stored`).
        self._claim_at: datetime | None = None
        # The earliest due time reported while a claim ran (its read may have come before the commit).
        self._reported: datetime | None = None
        self._wake = asyncio.Event()

    def timer_stored(self, due_at: datetime) -> None:
        """A timer due at `due_at` was committed by this process: claim by then, not at the next poll. Call after
        the commit (a claim that reads before it would miss the timer), from the loop's event loop."""
        if self._claim_at is None:
            self._reported = due_at if self._reported is None else min(self._reported, due_at)
        elif due_at < self._claim_at:
            self._claim_at = due_at
            self._wake.set()

    def wake(self) -> None:
        """Claim now: a timer was just stored that may fall due before the next poll (call from the loop's thread)."""
        self.timer_stored(self._clock.now())

    async def fire_due(self) -> int:
        """Claim and fire one batch of due timers (and any expired claim of a dead instance); the number fired."""
        fired = 0
        for claim in await self.claim():
            fired += await self._fire(claim)
        return fired

    async def claim(self) -> list[Claim]:
        """The next batch of due timers, claimed (and, a few times per lease, the expired claims taken over)."""
        now = self._clock.now()
        claims: list[Claim] = []
        if self._next_release is None or now >= self._next_release:
            self._next_release = now + self._release_every
            released = await self._timers.release_expired(now)
            if released:
                log.info("timers.leases_expired", count=released)
            for claim in await self._timers.take_over_expired(now, self._owner, self._lease):
                log.warning("timers.claim_taken_over", claim_id=claim.claim_id, count=len(claim.timers))
                claims.append(claim)
        if self._cursor is None:
            claim = await self._timers.claim_due(
                now, self._owner, self._lease, self._batch, lookahead=timedelta(seconds=self._poll)
            )
            self._next_due, self._full = claim.next_due, claim.full
            if claim.full and claim.high is not None and claim.low is not None:
                # A backlog: walk through it by windows of due times from here on (see `claim_due`).
                self._cursor, self._span = claim.high, max(claim.high - claim.low, MIN_SPAN) * 2
        else:
            until = min(now, self._cursor + self._span)
            claim = await self._timers.claim_due(
                now, self._owner, self._lease, self._batch, after=self._cursor, until=until
            )
            self._next_due, self._full = None, True
            if claim.full and claim.high is not None and claim.low is not None:
                self._cursor, self._span = claim.high, max(claim.high - claim.low, MIN_SPAN) * 2
            elif until >= now:
                # Caught up: back to whole-range claims, which also find any timer left behind the window.
                self._cursor, self._full = None, False
            else:
                self._cursor, self._span = until, self._span * 2
        if claim.timers:
            TIMER_BATCH.observe(len(claim.timers))
            claims.append(claim)
        return claims

    async def _fire_all(self, claims: list[Claim]) -> None:
        for claim in claims:
            try:
                await self._fire(claim)
            except Exception:
                log.warning("timers.fire_failed", claim_id=claim.claim_id, exc_info=True)

    async def _fire(self, claim: Claim) -> int:
        carrying = [(t, t.message) for t in claim.timers if t.kind is TimerKind.MESSAGE and t.message is not None]
        # Publish, then complete the claim: a crash in between republishes (consumers de-duplicate by message id).
        # Each message on its own: one the broker refuses (no queue bound for it) is backed off with its timer, and
        # the others fire, rather than the whole batch being published again.
        outcomes = await self._publisher.publish_each([message for _, message in carrying])
        refused = [(t, o) for (t, _), o in zip(carrying, outcomes, strict=True) if o is not None]
        if carrying and len(refused) == len(carrying):
            # The broker away (nothing confirmed): the batch back at once rather than after the lease.
            await self._timers.release(claim)
            raise refused[0][1]
        failed: list[str] = [t.timer_id for t, _ in refused]
        for timer, error in refused:
            log.warning("timers.publish_failed", timer_id=timer.timer_id, error=f"{type(error).__name__}: {error}")
        for timer in claim.timers:
            if timer.kind is TimerKind.REPLAN and timer.payment_id:
                try:
                    with continued(timer.trace_context):
                        await self._replan(timer.payment_id)
                except Exception:
                    log.warning("timers.replan_failed", timer_id=timer.timer_id, exc_info=True)
                    failed.append(timer.timer_id)
        if failed:
            await self._timers.retry_later(claim, failed, self._clock.now(), self._lease)
        await self._timers.complete(claim)
        done = self._clock.now()
        fired = [t for t in claim.timers if t.timer_id not in failed]
        for timer in fired:
            TIMERS_FIRED.labels(timer.purpose or timer.kind.value).inc()
            TIMER_LATENESS.observe(max((done - timer.due_at).total_seconds(), 0.0))
        log.debug("timers.fired", count=len(fired))
        return len(fired)

    def _sleep_seconds(self) -> float:
        if self._full:
            return 0.0
        if self._next_due is None:
            return self._poll
        until = (self._next_due - self._clock.now()).total_seconds()
        return float(min(max(until, MIN_SLEEP_SECONDS), self._poll))

    async def _sleep(self, seconds: float) -> None:
        """Until the next claim: `seconds` from now, or earlier if a timer stored meanwhile falls due sooner."""
        claim_at = self._clock.now() + timedelta(seconds=seconds)
        if self._reported is not None:
            claim_at = min(claim_at, self._reported)
        self._claim_at = claim_at
        await asyncio.sleep(0)
        while (remaining := (self._claim_at - self._clock.now()).total_seconds()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def run(self) -> None:
        """Claims and fires until cancelled, two batches in flight: while one batch is being published the next one
        is claimed (the database and the broker work at the same time), and one batch is published at a time."""
        try:
            await self._timers.drop_obsolete_indexes()
        except Exception:
            log.warning("timers.drop_obsolete_indexes_failed", exc_info=True)
        firing: asyncio.Task[None] | None = None
        try:
            while True:
                self._claim_at, self._reported = None, None
                try:
                    claims = await self.claim()
                    delay = self._sleep_seconds()
                except Exception:
                    log.warning("timers.claim_failed", exc_info=True)
                    claims, delay = [], self._poll
                    self._next_due, self._full, self._cursor = None, False, None
                if claims:
                    if firing is not None:
                        await firing
                    firing = asyncio.create_task(self._fire_all(claims))
                await self._sleep(delay)
        finally:
            # Stopping: the batch being published gets a few seconds to finish; if it does not, its claim is taken
            # over and fired again once its lease expires.
            if firing is not None and not firing.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(firing, SHUTDOWN_GRACE_SECONDS)
