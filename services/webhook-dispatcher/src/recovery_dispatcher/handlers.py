"""Dispatcher handlers: one initial event per (payment attempt, event type), delivered, recorded, retried."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import (
    DeliverWebhook,
    PaymentFailed,
    PaymentSucceeded,
    ProfileUpdated,
    ScheduleTimer,
    WebhookDeliveryFailed,
    WebhookEndpointDisabled,
)
from recovery_contracts.payments import PaymentObject
from recovery_dispatcher import metrics
from recovery_dispatcher.adapters.delivery import DeliveryResult, WebhookSender
from recovery_dispatcher.adapters.record_writer import DuplicateEvent, RecordWriter
from recovery_dispatcher.adapters.store import (
    EndpointStore,
    EventStore,
    checked_merchant_id,
    initial_event_id,
    record_key,
    retry_event_id,
)
from recovery_dispatcher.domain.body import build_body
from recovery_dispatcher.domain.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from recovery_dispatcher.domain.policy import RetrySchedule, next_retry_delay
from recovery_dispatcher.domain.signing import build_headers
from recovery_runtime.bus import MessageRejected
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import UnitOfWork, Transaction

log = structlog.get_logger(__name__)

EVENT_CLASS = "payments"
CONTENT_TYPE = "payment_details"
# Copied from the initial record onto every retry record.
_SHARED_FIELDS = (
    "event_type",
    "event_class",
    "primary_object_id",
    "primary_object_type",
    "payment_id",
    "merchant_id",
    "business_profile_id",
    "initial_attempt_id",
    "sequence",
)


class DeliveryInProgress(Exception):
    """Another dispatcher holds this event's delivery lease: retry the message after a pause."""


class EventStatus:
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"  # RETRIES_EXCEEDED, or a destination that can never work (blocked, disabled)


class WebhookDispatcher:
    def __init__(
        self,
        *,
        store: UnitOfWork,
        events: EventStore,
        endpoints: EndpointStore,
        writer: RecordWriter,
        sender_factory: Callable[[], WebhookSender],
        clock: Clock,
        time_scale: TimeScale,
        schedule: RetrySchedule,
        lease: timedelta,
        instance_id: str,
        user_agent: str,
        breaker: BreakerPolicy | None = None,
        endpoint_concurrency: int = 16,
        disable_after: timedelta = timedelta(days=5),
    ) -> None:
        self._store = store
        self._events = events
        self._endpoints = endpoints
        self._writer = writer
        self._sender_factory = sender_factory
        self._sender: WebhookSender | None = None
        self._clock = clock
        self._scale = time_scale
        self._schedule = schedule
        self._lease = lease
        # The lease owner: this process (host names repeat across processes on one machine).
        self._instance = f"{instance_id}/{os.getpid()}-{secrets.token_hex(4)}"
        # Events this process claimed and is delivering now (idempotent ids).
        self._claimed_here: set[str] = set()
        self._user_agent = user_agent
        # Breaker durations are wall-clock (already scaled); `disable_after` is schedule time.
        self._breaker_policy = breaker or BreakerPolicy()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._endpoint_concurrency = endpoint_concurrency
        self._endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self._disable_after = disable_after

    async def start(self) -> None:
        # The sender's aiohttp session must be created inside the running event loop.
        self._sender = self._sender_factory()
        self._writer.start()

    async def close(self) -> None:
        await self._writer.close()
        if self._sender is not None:
            await self._sender.aclose()

    @property
    def sender(self) -> WebhookSender:
        if self._sender is None:
            raise RuntimeError("dispatcher not started")
        return self._sender

    # -- message handlers ----------------------------------------------------------------------------

    async def payment_succeeded(self, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
        event = envelope.payload
        await self._raise_event(envelope, "payment_succeeded", event.attempt_id, event.payment)

    async def payment_failed(self, envelope: Envelope[PaymentFailed], queue: ConsumerQueue) -> None:
        event = envelope.payload
        await self._raise_event(envelope, "payment_failed", event.attempt_id, event.payment)

    async def deliver_webhook(self, envelope: Envelope[DeliverWebhook], queue: ConsumerQueue) -> None:
        command = envelope.payload
        if not envelope.merchant_id:
            raise MessageRejected("deliver_webhook without merchant_id in its envelope")
        initial = await self._events.get(envelope.merchant_id, command.initial_attempt_id)
        if initial is None:
            raise MessageRejected(f"no webhook event {command.initial_attempt_id}")
        if initial.get("retry_index") != command.retry_index:
            log.info("webhook.retry_stale", event_id=initial["event_id"], retry_index=command.retry_index)
            return
        await self._deliver(initial, (EventStatus.RETRY_SCHEDULED,))

    async def profile_updated(self, envelope: Envelope[ProfileUpdated], queue: ConsumerQueue) -> None:
        async def project(tx: Transaction) -> None:
            await self._endpoints.apply(envelope.payload, tx.session)

        await self._store.apply(project, consumed=envelope, consumer=queue.name)
        self._endpoints.forget(envelope.payload.profile_id)

    # -- the event lifecycle -------------------------------------------------------------------------

    async def _raise_event(
        self, envelope: Envelope[Any], event_type: str, primary_object_id: str, payment: PaymentObject
    ) -> None:
        profile_id = envelope.profile_id
        merchant_id = envelope.merchant_id
        if not profile_id or not merchant_id:
            raise MessageRejected("payment event without merchant_id and profile_id in its envelope")
        try:
            checked_merchant_id(merchant_id)
        except ValueError as invalid:
            raise MessageRejected(str(invalid)) from None
        idempotent_id = idempotent_event_id(primary_object_id, event_type)
        if await self._endpoints.get(profile_id) is None:
            # profile.updated travels on its own queue and may land a moment later.
            raise RuntimeError(f"profile {profile_id} not known to the dispatcher yet")
        now = self._clock.now()
        event_id = initial_event_id(idempotent_id, now)
        claim: dict[str, Any] = {
            "idempotent_event_id": idempotent_id,
            "event_id": event_id,
            "payment_id": payment.id,
            "created_at": now,
            # Built once; every attempt sends and signs exactly these bytes.
            "body": build_body(
                merchant_id=merchant_id,
                event_id=event_id,
                event_type=event_type,
                content_type=CONTENT_TYPE,
                content_object=payment.model_dump_json().encode(),
                timestamp=now,
            ),
            "lease_until": now + self._lease,
            "lease_owner": self._instance,
        }
        try:
            # The claim decides, also between dispatchers racing on the same event; it numbers the event within
            # its payment too (`sequence`; record_writer.py).
            await self._writer.claim(claim)
        except DuplicateEvent:
            await self._duplicate(envelope, event_type, primary_object_id, payment.id, idempotent_id)
            return
        await self._deliver_claimed(envelope, event_type, primary_object_id, claim)

    async def _deliver_claimed(
        self, envelope: Envelope[Any], event_type: str, primary_object_id: str, claim: dict[str, Any]
    ) -> None:
        self._claimed_here.add(claim["idempotent_event_id"])
        try:
            record = self._initial_record(envelope, event_type, primary_object_id, claim)
            await self._send_and_settle(record, False)
        finally:
            self._claimed_here.discard(claim["idempotent_event_id"])

    def _initial_record(
        self, envelope: Envelope[Any], event_type: str, primary_object_id: str, claim: dict[str, Any]
    ) -> dict[str, Any]:
        """The initial event record (Hyperswitch's shape) of a claimed event, not stored yet."""
        event_id = claim["event_id"]
        return {
            "_id": record_key(envelope.merchant_id, event_id),
            "event_id": event_id,
            "initial_attempt_id": event_id,
            "idempotent_event_id": claim["idempotent_event_id"],
            "event_type": event_type,
            "event_class": EVENT_CLASS,
            "primary_object_id": primary_object_id,
            "primary_object_type": CONTENT_TYPE,
            "payment_id": claim["payment_id"],
            "merchant_id": envelope.merchant_id,
            "business_profile_id": envelope.profile_id,
            "created_at": claim["created_at"],
            "body": bytes(claim["body"]),
            "sequence": claim["sequence"],
            "sequence_key": claim["sequence_key"],
            "delivery_attempt": "initial_attempt",
            "is_webhook_notified": False,
            "is_overall_delivery_successful": False,
            "status": EventStatus.DELIVERING,
            "lease_until": claim["lease_until"],
            "lease_owner": claim["lease_owner"],
            "retry_index": 0,
            "holds": 0,
            "request": None,
            "response": None,
        }

    async def _duplicate(
        self, envelope: Envelope[Any], event_type: str, primary_object_id: str, payment_id: str, idempotent_id: str
    ) -> None:
        claim = await self._events.claim_of(payment_id, idempotent_id)
        if claim is None:
            raise RuntimeError(f"duplicate event {idempotent_id} not readable yet")
        existing = await self._events.get(envelope.merchant_id, claim["event_id"])
        if existing is None:
            # Claimed, not recorded: its first attempt is in flight, or the dispatcher that claimed it died (or
            # this process, whose delivery of it failed before recording: a database outage).
            now = self._clock.now()
            lease = claim.get("lease_until")
            orphaned_here = claim.get("lease_owner") == self._instance and idempotent_id not in self._claimed_here
            if lease is not None and lease > now and not orphaned_here:
                raise DeliveryInProgress(claim["event_id"])
            if not await self._events.take_claim(claim["_id"], lease, now + self._lease, self._instance):
                raise DeliveryInProgress(claim["event_id"])
            claim["lease_until"], claim["lease_owner"] = now + self._lease, self._instance
            log.info("webhook.claim_taken_over", event_id=claim["event_id"])
            await self._deliver_claimed(envelope, event_type, primary_object_id, claim)
            return
        if existing["status"] == EventStatus.DELIVERING:
            # Finish its delivery only if nobody is doing it (the dispatcher that raised it died).
            if existing.get("lease_until") and existing["lease_until"] > self._clock.now():
                raise DeliveryInProgress(existing["event_id"])
            await self._deliver(existing, ())
        log.info("webhook.duplicate_event", event_id=existing["event_id"], status=existing["status"])

    async def _deliver(self, initial: dict[str, Any], from_statuses: tuple[str, ...]) -> None:
        now = self._clock.now()
        if not await self._events.take(initial["_id"], from_statuses, now, now + self._lease, self._instance):
            log.info("webhook.not_taken", event_id=initial["event_id"], status=initial.get("status"))
            return
        await self._send_and_settle(initial, True)

    def _breaker(self, url: str) -> CircuitBreaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = self._breakers[url] = CircuitBreaker(self._breaker_policy)
        return breaker

    def _slots(self, url: str) -> asyncio.Semaphore:
        slots = self._endpoint_slots.get(url)
        if slots is None:
            slots = self._endpoint_slots[url] = asyncio.Semaphore(self._endpoint_concurrency)
        return slots

    async def _store_record(self, initial: dict[str, Any]) -> None:
        """Write the initial record of a claimed event before a path that updates it (hold, failure)."""
        _bind_event(initial)
        try:
            await self._writer.insert(initial)
        except DuplicateEvent:
            # A dispatcher whose claim lease had run out recorded it meanwhile: carry on with that record.
            log.warning("webhook.record_exists", event_id=initial["event_id"])

    async def _send_and_settle(self, initial: dict[str, Any], recorded: bool) -> None:
        """Deliver a claimed event. `recorded`: its initial record is stored (else it is written with the
        first attempt's result: one insert on the fast path)."""
        event_id = initial["event_id"]
        endpoint = await self._endpoints.get(initial["business_profile_id"])
        if endpoint is None or not endpoint.get("url") or not endpoint.get("enabled", True):
            if not recorded:
                await self._store_record(initial)
            await self._fail(initial, endpoint, "no enabled webhook endpoint on the profile", "no_endpoint", 0)
            return
        if endpoint.get("disabled_reason"):
            if not recorded:
                await self._store_record(initial)
            reason = f"endpoint disabled: {endpoint['disabled_reason']}"
            await self._fail(initial, endpoint, reason, "endpoint_disabled", 0)
            return
        url: str = endpoint["url"]
        now = self._clock.now()
        sequence = initial.get("sequence")
        if sequence and sequence > 1:
            earlier = await self._events.earlier_unfinished(initial["merchant_id"], initial["payment_id"], sequence)
            if earlier is not None:
                if not recorded:
                    await self._store_record(initial)
                # Never overtake an older event of the same payment: come back after its next try.
                due = max(earlier.get("next_retry_at") or now, now) + self._scale.wall(timedelta(seconds=5))
                await self._hold(
                    initial, due, f"waiting for {earlier['event_id']} (sequence {earlier.get('sequence')})"
                )
                return
        breaker = self._breaker(url)
        if not breaker.allow(now):
            if not recorded:
                await self._store_record(initial)
            retry_at = breaker.retry_at() or now
            due = max(retry_at, now + self._breaker_policy.cooldown / 4)
            await self._hold(initial, due, f"circuit open for {url}")
            return

        body: bytes = bytes(initial["body"])

        def headers_for(_: int) -> list[tuple[str, str]]:
            return build_headers(
                body=body,
                webhook_id=event_id,
                timestamp=int(self._clock.now().timestamp()),
                hash_key=endpoint.get("hash_key"),
                whsec_secrets=endpoint.get("whsec_secrets") or (),
                custom_headers=endpoint.get("custom_headers") or {},
                user_agent=self._user_agent,
                sequence=sequence,
            )

        async with self._slots(url):
            results = await self.sender.send_with_retries(url, body, headers_for)
        first_kind = "initial_attempt" if initial.get("request") is None else "automatic_retry"
        await self._record_attempts(initial, results, first_kind, recorded)
        last = results[-1]
        await self._endpoint_health(initial, endpoint, breaker, last)
        if last.is_success:
            metrics.events_finished("delivered").inc()
            # DEBUG: one line per delivery would cost more than the delivery's own CPU; the record and the
            # metrics keep every delivery.
            log.debug("webhook.delivered", event_id=event_id, status_code=last.status_code, attempts=len(results))
            return
        verdict = last.verdict
        attempts = int(initial.get("attempts", 0))
        if verdict.disables_endpoint:
            await self._disable_endpoint(initial, endpoint, f"410 Gone from {url}")
            await self._fail(initial, endpoint, "endpoint answered 410 Gone: disabled", "endpoint_gone", attempts)
            return
        if not verdict.should_retry:
            await self._fail(initial, endpoint, verdict.reason, "blocked", attempts)
            return
        await self._schedule_retry(initial, endpoint, verdict.retry_after, verdict.reason)

    async def _record_attempts(
        self, initial: dict[str, Any], results: list[DeliveryResult], first_kind: str, recorded: bool
    ) -> None:
        """The first attempt of an initial delivery fills the initial record; any other is a record of its own.
        The initial record's final status is written with it: on the fast path the whole record is one insert
        (batched with other deliveries'), else one batched update."""
        writes = []
        initial_fields: dict[str, Any] = {}
        for number, result in enumerate(results):
            kind = first_kind if number == 0 else "automatic_retry"
            metrics.delivery_attempts(result.verdict.outcome.value, kind).inc()
            metrics.DELIVERY_SECONDS.observe(result.duration_ms / 1000)
            if kind == "initial_attempt":
                # The initial record holds the body once (`body`); its request is read back with it.
                attempt = _attempt_fields(initial, result, with_body=False)
                initial_fields.update(attempt)
                initial["request"] = attempt["request"]
                continue
            attempt = _attempt_fields(initial, result)
            writes.append(self._writer.insert(self._retry_record(initial, result, kind, attempt)))
        initial["attempts"] = int(initial.get("attempts", 0)) + len(results)
        initial_fields["attempts"] = initial["attempts"]
        last = results[-1]
        if last.is_success:
            initial_fields.update(
                status=EventStatus.DELIVERED,
                status_reason="delivered",
                is_overall_delivery_successful=True,
                is_webhook_notified=True,
                lease_until=None,
                finished_at=self._clock.now(),
            )
        if recorded:
            writes.append(self._writer.update(initial["_id"], initial_fields))
            await asyncio.gather(*writes)
            return
        initial.update(initial_fields)
        if not writes:
            # The fast path: one write, no task of its own.
            outcomes: list[Any] = [None]
            try:
                await self._writer.insert(initial)
            except Exception as error:
                outcomes[0] = error
        else:
            outcomes = await asyncio.gather(self._writer.insert(initial), *writes, return_exceptions=True)
        for outcome in outcomes[1:]:
            if isinstance(outcome, BaseException):
                raise outcome
        if isinstance(outcomes[0], DuplicateEvent):
            # A dispatcher whose claim lease had run out recorded the event meanwhile: ours is a retry record.
            log.warning("webhook.record_exists", event_id=initial["event_id"])
            await self._writer.insert(self._retry_record(initial, results[0], "automatic_retry"))
        elif isinstance(outcomes[0], BaseException):
            raise outcomes[0]

    @staticmethod
    def _retry_record(
        initial: dict[str, Any], result: DeliveryResult, kind: str, attempt: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A record of its own for an attempt after the first (`automatic_retry`, `manual_retry`)."""
        retry_id = retry_event_id(initial["event_id"])
        return {
            **{k: initial.get(k) for k in _SHARED_FIELDS},
            "_id": record_key(initial["merchant_id"], retry_id),
            "event_id": retry_id,
            "idempotent_event_id": f"{initial['idempotent_event_id']}:{retry_id}",
            "created_at": result.started_at,
            "delivery_attempt": kind,
            "is_overall_delivery_successful": None,
            **(attempt if attempt is not None else _attempt_fields(initial, result)),
        }

    async def _endpoint_health(
        self, initial: dict[str, Any], endpoint: dict[str, Any], breaker: CircuitBreaker, last: DeliveryResult
    ) -> None:
        profile_id = initial["business_profile_id"]
        was_open = breaker.state is not CircuitState.CLOSED
        if last.is_success:
            breaker.record_success()
            if was_open:
                metrics.CIRCUITS_OPEN.dec()
                log.info("webhook.circuit_closed", url=endpoint["url"], event_id=initial["event_id"])
            if endpoint.get("failing_since"):
                await self._endpoints.mark_healthy(profile_id)
            return
        if not last.verdict.should_retry:
            return
        now = self._clock.now()
        if breaker.record_failure(now):
            if not was_open:
                metrics.CIRCUITS_OPEN.inc()
            log.warning(
                "webhook.circuit_opened",
                url=endpoint["url"],
                retry_at=str(breaker.retry_at()),
                event_id=initial["event_id"],
            )
        failing_since: datetime | None = endpoint.get("failing_since")
        if failing_since is None:
            await self._endpoints.mark_failing(profile_id, now)
        elif now - failing_since >= self._scale.wall(self._disable_after):
            await self._disable_endpoint(
                initial, endpoint, f"failing since {failing_since.isoformat()} without a successful delivery"
            )

    async def _disable_endpoint(self, initial: dict[str, Any], endpoint: dict[str, Any], reason: str) -> None:
        _bind_event(initial)
        now = self._clock.now()
        profile_id = initial["business_profile_id"]
        notice = Envelope[WebhookEndpointDisabled](
            type=MessageType.WEBHOOK_ENDPOINT_DISABLED,
            merchant_id=initial["merchant_id"],
            profile_id=profile_id,
            payload=WebhookEndpointDisabled(
                profile_id=profile_id,
                merchant_id=initial["merchant_id"],
                url=endpoint.get("url"),
                reason=reason,
                failing_since=endpoint.get("failing_since"),
                disabled_at=now,
            ),
        )

        async def disable(tx: Transaction) -> None:
            if await self._endpoints.disable(profile_id, reason, tx.session):
                tx.emit(notice)
                metrics.ENDPOINTS_DISABLED.labels("gone" if reason.startswith("410") else "failing").inc()

        await self._store.apply(disable)
        self._endpoints.forget(profile_id)
        log.warning("webhook.endpoint_disabled", profile_id=profile_id, reason=reason)

    async def _fail(
        self, initial: dict[str, Any], endpoint: dict[str, Any] | None, reason: str, result: str, attempts: int
    ) -> None:
        """A final failure: the record says why, and `webhook.delivery-failed` tells operations."""
        _bind_event(initial)
        now = self._clock.now()
        notice = Envelope[WebhookDeliveryFailed](
            type=MessageType.WEBHOOK_DELIVERY_FAILED,
            correlation_id=initial["payment_id"],
            merchant_id=initial["merchant_id"],
            profile_id=initial["business_profile_id"],
            payload=WebhookDeliveryFailed(
                event_id=initial["event_id"],
                idempotent_event_id=initial["idempotent_event_id"],
                event_type=initial["event_type"],
                payment_id=initial["payment_id"],
                profile_id=initial["business_profile_id"],
                url=(endpoint or {}).get("url"),
                reason=reason,
                attempts=attempts,
                failed_at=now,
            ),
        )

        async def finish(tx: Transaction) -> None:
            fields = {"status": EventStatus.FAILED, "status_reason": reason, "lease_until": None, "finished_at": now}
            await self._events.update(initial["_id"], fields, tx.session)
            tx.emit(notice)

        await self._store.apply(finish)
        metrics.events_finished(result).inc()
        log.warning("webhook.failed", reason=reason)

    async def _hold(self, initial: dict[str, Any], due: datetime, reason: str) -> None:
        """Park the event (ordering, open circuit) until `due` without using up a retry of its schedule."""
        _bind_event(initial)
        holds = int(initial.get("holds", 0)) + 1
        await self._timer(initial, int(initial.get("retry_index", 0)), due, reason, f"hold{holds}", {"holds": holds})
        metrics.RETRIES_SCHEDULED.labels("hold").inc()
        log.info("webhook.held", due_at=due.isoformat(), reason=reason)

    async def _schedule_retry(
        self, initial: dict[str, Any], endpoint: dict[str, Any], retry_after: timedelta | None, reason: str
    ) -> None:
        _bind_event(initial)
        retry_index = int(initial.get("retry_index", 0))
        delay = next_retry_delay(retry_index, self._schedule_of(endpoint), retry_after)
        if delay is None:
            attempts = int(initial.get("attempts", 0))
            await self._fail(initial, endpoint, f"RETRIES_EXCEEDED: {reason}", "retries_exceeded", attempts)
            return
        due = self._clock.now() + self._scale.wall(delay)
        await self._timer(initial, retry_index + 1, due, reason, str(retry_index + 1), {})
        metrics.RETRIES_SCHEDULED.labels("schedule").inc()
        log.info("webhook.retry_scheduled", retry_index=retry_index + 1, due_at=due.isoformat(), reason=reason)

    def _schedule_of(self, endpoint: dict[str, Any]) -> RetrySchedule:
        seconds = endpoint.get("retry_schedule_seconds")
        if seconds is None:
            return self._schedule
        return RetrySchedule.from_seconds(
            seconds, max_retry_after_seconds=self._schedule.max_retry_after.total_seconds()
        )

    async def _timer(
        self, initial: dict[str, Any], retry_index: int, due: datetime, reason: str, suffix: str, extra: dict[str, Any]
    ) -> None:
        command = Envelope[DeliverWebhook](
            type=MessageType.DELIVER_WEBHOOK,
            correlation_id=initial["payment_id"],
            merchant_id=initial["merchant_id"],
            profile_id=initial["business_profile_id"],
            payload=DeliverWebhook(initial_attempt_id=initial["event_id"], retry_index=retry_index),
        )
        request = Envelope[ScheduleTimer](
            type=MessageType.SCHEDULE_TIMER,
            correlation_id=initial["payment_id"],
            merchant_id=initial["merchant_id"],
            profile_id=initial["business_profile_id"],
            payload=ScheduleTimer(
                timer_id=f"webhook:{initial['event_id']}:{suffix}",
                due_at=due,
                kind="webhook_retry",
                payment_id=initial["payment_id"],
                message=command.model_dump(mode="json"),
            ),
        )
        fields = {
            "status": EventStatus.RETRY_SCHEDULED,
            "retry_index": retry_index,
            "next_retry_at": due,
            "status_reason": reason,
            "lease_until": None,
            **extra,
        }

        async def schedule(tx: Transaction) -> None:
            await self._events.update(initial["_id"], fields, tx.session)
            tx.emit(request)

        await self._store.apply(schedule)
        initial.update(fields)

    # -- manual retry (the events API) ----------------------------------------------------------------

    async def manual_retry(self, initial: dict[str, Any]) -> dict[str, Any]:
        """One attempt now, recorded as `manual_retry` and returned; the schedule and circuit are bypassed
        (the merchant asked), a success marks the event delivered (pending automatic retries then stop)."""
        endpoint = await self._endpoints.get(initial["business_profile_id"])
        if endpoint is None or not endpoint.get("url"):
            raise LookupError("the profile has no webhook endpoint")
        body = bytes(initial["body"])
        headers = build_headers(
            body=body,
            webhook_id=initial["event_id"],
            timestamp=int(self._clock.now().timestamp()),
            hash_key=endpoint.get("hash_key"),
            whsec_secrets=endpoint.get("whsec_secrets") or (),
            custom_headers=endpoint.get("custom_headers") or {},
            user_agent=self._user_agent,
            sequence=initial.get("sequence"),
        )
        result = await self.sender.send(endpoint["url"], body, headers)
        metrics.delivery_attempts(result.verdict.outcome.value, "manual_retry").inc()
        record = self._retry_record(initial, result, "manual_retry")
        await self._writer.insert(record)
        if result.is_success:
            await self._writer.update(
                initial["_id"],
                {
                    "status": EventStatus.DELIVERED,
                    "status_reason": "delivered by a manual retry",
                    "is_overall_delivery_successful": True,
                    "is_webhook_notified": True,
                    "lease_until": None,
                },
            )
        return record


def _bind_event(initial: dict[str, Any]) -> None:
    """Tag this delivery's later log lines with its event id. Only off the fast path: a delivered event logs
    nothing (binding costs more than the line it would tag)."""
    structlog.contextvars.bind_contextvars(event_id=initial["event_id"])


def _attempt_fields(initial: dict[str, Any], result: DeliveryResult, *, with_body: bool = True) -> dict[str, Any]:
    """An attempt's request and response as recorded. `with_body=False` (the initial record, which keeps the
    body bytes in `body`): the request without its copy of the body (readers take `body`; see `api.py`)."""
    # Header pairs as tuples: BSON stores a tuple as an array, as it would a list.
    request: dict[str, Any] = {"headers": result.request_headers}
    if with_body:
        request = {"body": bytes(initial["body"]).decode(), **request}
    return {
        "request": request,
        "response": {
            "status_code": result.status_code,
            "headers": result.response_headers,
            "body": result.response_body,
            "body_truncated": result.response_body_truncated,
            "error_message": result.error_message,
            "duration_ms": result.duration_ms,
        },
        "is_webhook_notified": result.is_success,
        "url": result.url,
        "attempted_at": result.started_at,
        "outcome": result.verdict.outcome.value,
    }


def retry_schedule(setting: str, max_retry_after_seconds: float = 6 * 3600) -> RetrySchedule | None:
    if not setting.strip():
        return None
    return RetrySchedule.from_seconds(
        (float(part) for part in setting.split(",") if part.strip()), max_retry_after_seconds=max_retry_after_seconds
    )
