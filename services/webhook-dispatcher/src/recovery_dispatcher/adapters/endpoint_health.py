"""Endpoint health as one dispatcher process sees it: a circuit breaker and a number of delivery slots per
endpoint URL (in memory, per process), and the endpoint's failing period and disabled flag (stored with the
endpoint, shared by every dispatcher)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog

from recovery_dispatcher import metrics
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.handlers.ports import EndpointRepository
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort

log = structlog.get_logger(__name__)


class InProcessEndpointHealth:
    """`breaker` durations and `disable_after` are wall-clock (already scaled)."""

    def __init__(
        self,
        endpoints: EndpointRepository,
        unit_of_work: UnitOfWorkPort,
        *,
        breaker: BreakerPolicy,
        concurrency: int,
        disable_after: timedelta,
    ) -> None:
        self._endpoints = endpoints
        self._unit_of_work = unit_of_work
        self._policy = breaker
        self._concurrency = concurrency
        self._disable_after = disable_after
        self._breakers: dict[str, CircuitBreaker] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _breaker(self, url: str) -> CircuitBreaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = self._breakers[url] = CircuitBreaker(self._policy)
        return breaker

    def held_until(self, url: str, now: datetime) -> datetime | None:
        breaker = self._breaker(url)
        return None if breaker.allow(now) else breaker.hold_until(now)

    def slot(self, url: str) -> asyncio.Semaphore:
        slots = self._slots.get(url)
        if slots is None:
            slots = self._slots[url] = asyncio.Semaphore(self._concurrency)
        return slots

    async def record(self, event: WebhookEvent, endpoint: Endpoint, last: DeliveryResult, now: datetime) -> None:
        """A success closes the circuit and ends the failing period; a failure worth retrying counts towards
        opening the circuit and disables an endpoint failing for too long. Other failures (blocked, gone) say
        nothing about the endpoint's health."""
        breaker = self._breaker(last.url)
        was_open = breaker.state is not CircuitState.CLOSED
        if last.is_success:
            breaker.record_success()
            if was_open:
                metrics.CIRCUITS_OPEN.dec()
                log.info("webhook.circuit_closed", url=last.url, event_id=event.event_id)
            if endpoint.failing_since is not None:
                await self._endpoints.mark_healthy(endpoint.profile_id)
            return
        if not last.verdict.should_retry:
            return
        if breaker.record_failure(now):
            if not was_open:
                metrics.CIRCUITS_OPEN.inc()
            log.warning(
                "webhook.circuit_opened", url=last.url, retry_at=str(breaker.retry_at()), event_id=event.event_id
            )
        if endpoint.failing_since is None:
            await self._endpoints.mark_failing(endpoint.profile_id, now)
        elif endpoint.failing_too_long(now, self._disable_after):
            reason = f"failing since {endpoint.failing_since.isoformat()} without a successful delivery"
            await self.disable(event, endpoint, reason, now)

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
