"""Endpoint health, shared by every dispatcher: the circuit breaker of each endpoint (profile, URL), stored in
`endpoint_health` and changed by compare-and-set, its slow answers counted there; and the endpoint's failing
period and disabled flag (stored with the profile's endpoint, `webhook_endpoints`).

On a healthy endpoint a delivery costs no round trip here: the breaker is read through the repository's cache,
and a success on a closed breaker with no failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from recovery_dispatcher import metrics
from recovery_dispatcher.dependencies import BreakerRepository, EndpointRepository
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.breaker import BreakerPolicy, CircuitBreaker, EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort

log = structlog.get_logger(__name__)

# Compare-and-set rounds one change may lose before it is given up (the count is then one short: health is a
# heuristic, a delivery is never failed for it).
_MAX_TRIES = 5


class SharedEndpointHealth:
    """`breaker` durations and `disable_after` are wall-clock (already scaled); `slow_after` is the answer time
    (wall-clock) from which an attempt counts as a slow response."""

    def __init__(
        self,
        endpoints: EndpointRepository,
        breakers: BreakerRepository,
        unit_of_work: UnitOfWorkPort,
        *,
        breaker: BreakerPolicy,
        disable_after: timedelta,
        slow_after: timedelta,
    ) -> None:
        self._endpoints = endpoints
        self._breakers = breakers
        self._unit_of_work = unit_of_work
        self._policy = breaker
        self._disable_after = disable_after
        self._slow_after_ms = slow_after / timedelta(milliseconds=1)

    async def held_until(self, key: EndpointKey, now: datetime) -> datetime | None:
        """None when a delivery to the endpoint may go now (closed, or this dispatcher won the probe), else when
        to try again."""
        breaker = await self._breakers.get(key)
        for _ in range(_MAX_TRIES):
            admitted = breaker.admit(now, self._policy)
            if admitted is None:
                return breaker.hold_until(now, self._policy)
            if admitted is breaker:
                return None
            if await self._breakers.save(key, breaker, admitted, now) is not None:
                log.info("webhook.circuit_probe", url=key[1], profile_id=key[0])
                return None
            breaker = await self._breakers.get(key, fresh=True)
        return breaker.hold_until(now, self._policy)

    async def record(
        self, event: WebhookEvent, endpoint: Endpoint, results: list[DeliveryResult], now: datetime
    ) -> None:
        """Count a delivery's outcome (its last attempt's) towards the endpoint's health, and its slow answers.
        A success closes the circuit and ends the failing period; a failure worth retrying counts towards
        opening the circuit and disables an endpoint failing for too long. Other failures (blocked, gone) say
        nothing about the endpoint's health."""
        last, key = results[-1], endpoint.key
        for result in results:
            if result.duration_ms >= self._slow_after_ms:
                metrics.SLOW_RESPONSES.inc()
                await self._breakers.count_slow(key, now)
        if last.is_success:
            before, after = await self._change(key, CircuitBreaker.succeeded, now)
            if not before.is_closed and after.is_closed:
                metrics.CIRCUITS_OPEN.dec()
                log.info("webhook.circuit_closed", url=key[1], profile_id=key[0], event_id=event.event_id)
            if endpoint.failing_since is not None:
                await self._endpoints.mark_healthy(endpoint.profile_id)
            return
        if not last.verdict.should_retry:
            return
        before, after = await self._change(key, lambda breaker: breaker.failed(now, self._policy), now)
        if after.opened_by(before):
            if before.is_closed:
                metrics.CIRCUITS_OPEN.inc()
            log.warning(
                "webhook.circuit_opened", url=key[1], profile_id=key[0], retry_at=str(after.retry_at()),
                event_id=event.event_id,
            )  # fmt: skip
        if endpoint.failing_since is None:
            await self._endpoints.mark_failing(endpoint.profile_id, now)
        elif endpoint.failing_too_long(now, self._disable_after):
            reason = f"failing since {endpoint.failing_since.isoformat()} without a successful delivery"
            await self.disable(event, endpoint, reason, now)

    async def _change(
        self, key: EndpointKey, transition: Callable[[CircuitBreaker], CircuitBreaker], now: datetime
    ) -> tuple[CircuitBreaker, CircuitBreaker]:
        """Apply `transition` to the stored breaker by compare-and-set (read again after a lost round); the
        breaker it was applied to and the result."""
        breaker = await self._breakers.get(key)
        for _ in range(_MAX_TRIES):
            after = transition(breaker)
            if after is breaker:
                return breaker, breaker
            saved = await self._breakers.save(key, breaker, after, now)
            if saved is not None:
                return breaker, saved
            breaker = await self._breakers.get(key, fresh=True)
        log.warning("webhook.health_contended", url=key[1], profile_id=key[0])
        return breaker, breaker

    async def disable(self, event: WebhookEvent, endpoint: Endpoint, reason: str, now: datetime) -> None:
        """Disable the endpoint; the first dispatcher to do it tells operations (`webhook.endpoint-disabled`)."""
        notice = event.endpoint_disabled(url=endpoint.url, failing_since=endpoint.failing_since, reason=reason, now=now)

        async def disable(tx: Transaction) -> None:
            if await self._endpoints.disable(event.profile_id, reason, tx.session):
                tx.emit(notice)
                metrics.ENDPOINTS_DISABLED.labels("gone" if reason.startswith("410") else "failing").inc()

        await self._unit_of_work.apply(disable)
        self._endpoints.forget(event.profile_id)
        log.warning("webhook.endpoint_disabled", profile_id=event.profile_id, reason=reason)
