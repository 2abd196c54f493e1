"""Delivering one webhook event: check the endpoint, the payment's order, the in-process bounds (or park it) and
the circuit, send, record, settle.

The decisions are the domain's (`WebhookEvent`, `Endpoint`, the breaker); this is the order of the steps and the
writes between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_dispatcher import metrics
from recovery_dispatcher.dependencies import (
    DeliverySlots,
    EndpointHealth,
    EndpointRepository,
    EventRepository,
    Sender,
)
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.endpoint import Endpoint, refusal_of
from recovery_dispatcher.domain.event import DuplicateEvent, Transition, WebhookEvent
from recovery_dispatcher.domain.fairness import Busy
from recovery_dispatcher.domain.policy import RetrySchedule
from recovery_dispatcher.domain.status import EventOutcome, EventStatus
from recovery_dispatcher.handlers.leases import DeliveryLeases
from recovery_runtime.bus import RetryLater, lease_wait
from recovery_runtime.clock import Clock
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort

log = structlog.get_logger(__name__)


class DeliveryInProgress(RetryLater):
    """Another dispatcher holds this event's delivery (its lease runs until `lease_until`): the message comes back
    after a pause, at the latest once that lease may have run out. By then the holder settled it (the message is a
    duplicate), or died holding it and this dispatcher takes it over."""

    def __init__(self, event_id: str, lease_until: datetime | None, now: datetime) -> None:
        super().__init__(
            f"event {event_id} is being delivered, lease until {lease_until}", lease_wait(lease_until, now)
        )


@dataclass(frozen=True)
class Delivery:
    """The dependencies of the dispatcher's handlers, and the delivery they share."""

    events: EventRepository
    endpoints: EndpointRepository
    health: EndpointHealth
    slots: DeliverySlots
    sender: Sender
    unit_of_work: UnitOfWorkPort
    clock: Clock
    leases: DeliveryLeases
    # The default retry schedule (a profile may have its own), in schedule time; wall = schedule / time_scale.
    schedule: RetrySchedule
    time_scale: float
    user_agent: str

    async def deliver_claimed(self, event: WebhookEvent) -> None:
        """Deliver an event this process has just claimed: it is recorded with its first attempt."""
        with self.leases.delivering(event.idempotent_event_id):
            await self._send_and_settle(event, recorded=False)

    async def deliver(self, event: WebhookEvent, from_statuses: tuple[EventStatus, ...]) -> bool:
        """Deliver a recorded event, if this process can take it (one dispatcher at a time); False when it could
        not (the event moved on, or another dispatcher holds it)."""
        now = self.clock.now()
        until = self.leases.until(now)
        if not await self.events.take(event, from_statuses, now, until, self.leases.owner):
            log.info("webhook.not_taken", event_id=event.event_id, status=event.status)
            return False
        await self._send_and_settle(event.leased(until, self.leases.owner), recorded=True)
        return True

    async def _send_and_settle(self, event: WebhookEvent, *, recorded: bool) -> None:
        """`recorded`: the event's initial record is stored (else it is written with the first attempt's
        result: one insert on the fast path)."""
        endpoint = await self.endpoints.get(event.profile_id)
        refusal = refusal_of(endpoint)
        if refusal is not None:
            outcome, reason = refusal
            url = endpoint.url if endpoint is not None else None
            failed = event.failed(reason, outcome=outcome, url=url, attempts=0, now=self.clock.now())
            await self._settle_unsent(event, failed, recorded=recorded)
            return
        assert endpoint is not None and endpoint.url is not None  # what refusal_of checked
        waiting = await self._waiting_for_earlier(event)
        if waiting is not None:
            await self._settle_unsent(event, waiting, recorded=recorded)
            return
        # In-process bounds first (no I/O): a delivery that may not start now (or within a few milliseconds, on a
        # prompt endpoint) is parked, holding nothing.
        slot = await self.slots.take(endpoint, event.merchant_id, self.clock.now())
        if isinstance(slot, Busy):
            await self._settle_unsent(event, event.held(slot.until, slot.reason), recorded=recorded)
            return
        results: list[DeliveryResult] = []
        try:
            due = await self.health.held_until(endpoint.key, self.clock.now())
            if due is None:
                results = await self._send(event, endpoint, endpoint.url)
        finally:
            slot.release(sum(result.duration_ms for result in results) / 1000 if results else None)
        if due is not None:
            await self._settle_unsent(event, event.held(due, f"circuit open for {endpoint.url}"), recorded=recorded)
            return
        await self._settle_sent(event, endpoint, results, recorded=recorded)

    async def _waiting_for_earlier(self, event: WebhookEvent) -> Transition | None:
        """The hold of an event whose payment has an older event pending (webhooks of a payment go in order)."""
        if event.sequence <= 1:
            return None
        earlier = await self.events.earlier_unfinished(event)
        return None if earlier is None else event.waiting_for(earlier, self.clock.now(), self.time_scale)

    async def _send(self, event: WebhookEvent, endpoint: Endpoint, url: str) -> list[DeliveryResult]:
        body, sequence = event.body, event.sequence or None

        def headers_for(_: int) -> Sequence[tuple[str, str]]:
            timestamp = int(self.clock.now().timestamp())
            return endpoint.headers(
                body, webhook_id=event.event_id, timestamp=timestamp, sequence=sequence, user_agent=self.user_agent
            )

        return await self.sender.send_with_retries(url, body, headers_for)

    async def _settle_sent(
        self, event: WebhookEvent, endpoint: Endpoint, results: list[DeliveryResult], *, recorded: bool
    ) -> None:
        last, now = results[-1], self.clock.now()
        after = event.attempts_made(
            len(results), first_succeeded=results[0].is_success, delivered_at=now if last.is_success else None
        )
        _count_attempts(results, event.first_attempt_kind)
        await self.events.record_attempts(event, after, results, recorded=recorded)
        if not last.is_success:
            bind_event(event)
        await self.health.record(after, endpoint, results, now)
        if last.is_success:
            metrics.events_finished(EventOutcome.DELIVERED).inc()
            # DEBUG: one line per delivery would cost more than the delivery's own CPU; the record and the
            # metrics keep every delivery.
            log.debug("webhook.delivered", event_id=event.event_id, status_code=last.status_code, attempts=len(results))
            return
        if last.verdict.disables_endpoint:
            await self.health.disable(after, endpoint, f"410 Gone from {last.url}", self.clock.now())
        schedule = endpoint.schedule(self.schedule)
        transition = after.after_failed_delivery(
            last.verdict, schedule=schedule, url=last.url, now=self.clock.now(), time_scale=self.time_scale
        )
        await self._commit(after, transition)

    async def _settle_unsent(self, event: WebhookEvent, transition: Transition, *, recorded: bool) -> None:
        """Fail or hold an event without an attempt; a claimed event is recorded first."""
        bind_event(event)
        if not recorded:
            try:
                await self.events.insert(event)
            except DuplicateEvent:
                # A dispatcher whose claim lease had run out recorded it meanwhile: carry on with that record.
                log.warning("webhook.record_exists", event_id=event.event_id)
        await self._commit(event, transition)

    async def _commit(self, before: WebhookEvent, transition: Transition) -> None:
        """Store the event's change with the messages it emits, in one transaction; neither when a merchant's
        manual retry delivered the event while this delivery was in flight (delivered stays: no retry is
        scheduled, no failure told)."""
        after = transition.event

        async def save(tx: Transaction) -> bool:
            if not await self.events.update(before, after, tx.session):
                return False
            for message in transition.messages:
                tx.emit(message)
            return True

        if not await self.unit_of_work.apply(save):
            log.info("webhook.delivered_meanwhile", event_id=after.event_id)
            return
        if transition.outcome is not None:
            metrics.events_finished(transition.outcome).inc()
            log.warning("webhook.failed", reason=after.status_reason)
        elif after.holds != before.holds:
            metrics.RETRIES_SCHEDULED.labels("hold").inc()
            log.info("webhook.held", due_at=_iso(after), reason=after.status_reason)
        else:
            metrics.RETRIES_SCHEDULED.labels("schedule").inc()
            log.info(
                "webhook.retry_scheduled", retry_index=after.retry_index, due_at=_iso(after), reason=after.status_reason
            )


def bind_event(event: WebhookEvent) -> None:
    """Tag this delivery's later log lines with its event id. Only off the fast path: a delivered event logs
    nothing (binding costs more than the line it would tag)."""
    structlog.contextvars.bind_contextvars(event_id=event.event_id)


def _count_attempts(results: list[DeliveryResult], first_kind: WebhookDeliveryAttempt) -> None:
    for number, result in enumerate(results):
        kind = first_kind if number == 0 else WebhookDeliveryAttempt.AUTOMATIC_RETRY
        metrics.delivery_attempts(result.verdict.outcome.value, kind.value).inc()
        metrics.DELIVERY_SECONDS.observe(result.duration_ms / 1000)


def _iso(event: WebhookEvent) -> str | None:
    return event.next_retry_at.isoformat() if event.next_retry_at is not None else None
