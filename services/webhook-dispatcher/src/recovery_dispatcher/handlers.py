"""Dispatcher handlers: one initial event per (payment attempt, event type), delivered and recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id, new_event_id
from recovery_contracts.messages import (
    DeliverWebhook,
    PaymentFailed,
    PaymentSucceeded,
    ProfileUpdated,
    ScheduleTimer,
)
from recovery_contracts.payments import PaymentObject
from recovery_dispatcher.adapters.delivery import DeliveryResult, WebhookSender
from recovery_dispatcher.adapters.store import EndpointStore, EventStore
from recovery_dispatcher.domain.body import build_body
from recovery_dispatcher.domain.policy import RetrySchedule, next_retry_delay
from recovery_dispatcher.domain.signing import build_headers
from recovery_runtime.bus import MessageRejected
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction

log = structlog.get_logger(__name__)

EVENT_CLASS = "payments"
CONTENT_TYPE = "payment_details"


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
        store: MessageStore,
        events: EventStore,
        endpoints: EndpointStore,
        sender_factory: Callable[[], WebhookSender],
        clock: Clock,
        time_scale: TimeScale,
        schedule: RetrySchedule,
        lease: timedelta,
        instance_id: str,
        user_agent: str,
    ) -> None:
        self._store = store
        self._events = events
        self._endpoints = endpoints
        self._sender_factory = sender_factory
        self._sender: WebhookSender | None = None
        self._clock = clock
        self._scale = time_scale
        self._schedule = schedule
        self._lease = lease
        self._instance = instance_id
        self._user_agent = user_agent

    async def start(self) -> None:
        # The sender's aiohttp session must be created inside the running event loop.
        self._sender = self._sender_factory()

    async def close(self) -> None:
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
        await self._raise_event(envelope, queue, "payment_succeeded", event.attempt_id, event.payment)

    async def payment_failed(self, envelope: Envelope[PaymentFailed], queue: ConsumerQueue) -> None:
        event = envelope.payload
        await self._raise_event(envelope, queue, "payment_failed", event.attempt_id, event.payment)

    async def deliver_webhook(self, envelope: Envelope[DeliverWebhook], queue: ConsumerQueue) -> None:
        command = envelope.payload
        initial = await self._events.get(command.initial_attempt_id)
        if initial is None:
            raise MessageRejected(f"no webhook event {command.initial_attempt_id}")
        if initial.get("retry_index") != command.retry_index:
            log.info("webhook.retry_stale", event_id=initial["_id"], retry_index=command.retry_index)
            return
        await self._deliver(initial, (EventStatus.RETRY_SCHEDULED,), "automatic_retry")

    async def profile_updated(self, envelope: Envelope[ProfileUpdated], queue: ConsumerQueue) -> None:
        async def project(tx: Transaction) -> None:
            await self._endpoints.apply(envelope.payload, tx.session)

        await self._store.apply(project, consumed=envelope, consumer=queue.name)

    # -- the event lifecycle -------------------------------------------------------------------------

    async def _raise_event(
        self,
        envelope: Envelope[Any],
        queue: ConsumerQueue,
        event_type: str,
        primary_object_id: str,
        payment: PaymentObject,
    ) -> None:
        profile_id = envelope.profile_id
        merchant_id = envelope.merchant_id
        if not profile_id or not merchant_id:
            raise MessageRejected("payment event without merchant_id and profile_id in its envelope")
        idempotent_id = idempotent_event_id(primary_object_id, event_type)
        existing = await self._events.find_initial(idempotent_id)
        if existing is None:
            endpoint = await self._endpoints.get(profile_id)
            if endpoint is None:
                # profile.updated travels on its own queue and may land a moment later.
                raise RuntimeError(f"profile {profile_id} not known to the dispatcher yet")
            now = self._clock.now()
            event_id = new_event_id()
            body = build_body(
                merchant_id=merchant_id,
                event_id=event_id,
                event_type=event_type,
                content_type=CONTENT_TYPE,
                content_object=payment.model_dump(mode="json"),
                timestamp=now,
            )
            record = {
                "_id": event_id,
                "event_id": event_id,
                "initial_attempt_id": event_id,
                "idempotent_event_id": idempotent_id,
                "event_type": event_type,
                "event_class": EVENT_CLASS,
                "primary_object_id": primary_object_id,
                "primary_object_type": CONTENT_TYPE,
                "payment_id": payment.id,
                "merchant_id": merchant_id,
                "business_profile_id": profile_id,
                "created_at": now,
                "body": body,
                "delivery_attempt": "initial_attempt",
                "is_webhook_notified": False,
                "is_overall_delivery_successful": False,
                "status": EventStatus.DELIVERING,
                "lease_until": now + self._lease,
                "lease_owner": self._instance,
                "retry_index": 0,
                "request": None,
                "response": None,
            }

            async def create(tx: Transaction) -> bool:
                if await self._events.find_initial(idempotent_id, tx.session) is not None:
                    return False
                await self._events.insert(record, tx.session)
                return True

            if await self._store.apply(create, consumed=envelope, consumer=queue.name):
                await self._send_and_settle(record, "initial_attempt")
                return
            existing = await self._events.find_initial(idempotent_id)
            assert existing is not None
        # A duplicate of an event already raised: finish its delivery only if nobody is doing it.
        if existing["status"] == EventStatus.DELIVERING:
            if existing.get("lease_until") and existing["lease_until"] > self._clock.now():
                raise DeliveryInProgress(existing["_id"])
            await self._deliver(
                existing, (), "initial_attempt" if existing.get("request") is None else "automatic_retry"
            )
        log.info("webhook.duplicate_event", event_id=existing["_id"], status=existing["status"])

    async def _deliver(self, initial: dict[str, Any], from_statuses: tuple[str, ...], kind: str) -> None:
        now = self._clock.now()
        if not await self._events.take(initial["_id"], from_statuses, now, now + self._lease, self._instance):
            log.info("webhook.not_taken", event_id=initial["_id"], status=initial.get("status"))
            return
        await self._send_and_settle(initial, kind)

    async def _send_and_settle(self, initial: dict[str, Any], kind: str) -> None:
        endpoint = await self._endpoints.get(initial["business_profile_id"])
        event_id = initial["_id"]
        structlog.contextvars.bind_contextvars(event_id=event_id)
        if endpoint is None or not endpoint.get("url") or not endpoint.get("enabled", True):
            await self._finish(initial, EventStatus.FAILED, "no enabled webhook endpoint on the profile")
            return
        if endpoint.get("disabled_reason"):
            await self._finish(initial, EventStatus.FAILED, f"endpoint disabled: {endpoint['disabled_reason']}")
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
            )

        attempts = {"n": 0}

        async def record(result: DeliveryResult) -> None:
            attempts["n"] += 1
            await self._record_attempt(initial, result, kind if attempts["n"] == 1 else "automatic_retry")

        results = await self.sender.send_with_retries(endpoint["url"], body, headers_for, on_attempt=record)
        last = results[-1]
        if last.is_success:
            await self._finish(initial, EventStatus.DELIVERED, "delivered", delivered=True)
            log.info("webhook.delivered", status_code=last.status_code, attempts=len(results))
            return
        verdict = last.verdict
        if verdict.disables_endpoint:
            await self._endpoints.disable(initial["business_profile_id"], f"410 Gone from {endpoint['url']}")
            await self._finish(initial, EventStatus.FAILED, "endpoint answered 410 Gone: disabled")
            return
        if not verdict.should_retry:
            await self._finish(initial, EventStatus.FAILED, verdict.reason)
            return
        await self._schedule_retry(initial, verdict.retry_after, verdict.reason)

    async def _record_attempt(self, initial: dict[str, Any], result: DeliveryResult, kind: str) -> None:
        attempt = {
            "request": {
                "body": bytes(initial["body"]).decode(),
                "headers": [list(h) for h in result.request_headers],
            },
            "response": {
                "status_code": result.status_code,
                "headers": [list(h) for h in result.response_headers],
                "body": result.response_body,
                "body_truncated": result.response_body_truncated,
                "error_message": result.error_message,
                "duration_ms": result.duration_ms,
            },
            "is_webhook_notified": result.is_success,
            "url": result.url,
            "attempted_at": result.started_at,
        }
        if initial.get("request") is None and kind == "initial_attempt":
            initial["request"] = attempt["request"]
            await self._events.update(initial["_id"], attempt)
            return
        retry_id = new_event_id()
        await self._events.insert(
            {
                **{
                    k: initial[k]
                    for k in (
                        "event_type",
                        "event_class",
                        "primary_object_id",
                        "primary_object_type",
                        "payment_id",
                        "merchant_id",
                        "business_profile_id",
                        "initial_attempt_id",
                    )
                },
                "_id": retry_id,
                "event_id": retry_id,
                "idempotent_event_id": f"{initial['idempotent_event_id']}:{retry_id}",
                "created_at": result.started_at,
                "delivery_attempt": kind,
                "is_overall_delivery_successful": None,
                **attempt,
            }
        )

    async def _finish(self, initial: dict[str, Any], status: str, reason: str, delivered: bool = False) -> None:
        fields: dict[str, Any] = {
            "status": status,
            "status_reason": reason,
            "lease_until": None,
            "finished_at": self._clock.now(),
        }
        if delivered:
            fields["is_overall_delivery_successful"] = True
            fields["is_webhook_notified"] = True
        await self._events.update(initial["_id"], fields)

    async def _schedule_retry(self, initial: dict[str, Any], retry_after: timedelta | None, reason: str) -> None:
        retry_index = int(initial.get("retry_index", 0))
        delay = next_retry_delay(retry_index, self._schedule, retry_after)
        if delay is None:
            await self._finish(initial, EventStatus.FAILED, f"RETRIES_EXCEEDED: {reason}")
            log.warning("webhook.retries_exceeded", event_id=initial["_id"])
            return
        now = self._clock.now()
        due = now + self._scale.wall(delay)
        next_index = retry_index + 1
        command = Envelope[DeliverWebhook](
            type=MessageType.DELIVER_WEBHOOK,
            correlation_id=initial["payment_id"],
            merchant_id=initial["merchant_id"],
            profile_id=initial["business_profile_id"],
            payload=DeliverWebhook(initial_attempt_id=initial["_id"], retry_index=next_index),
        )
        request = Envelope[ScheduleTimer](
            type=MessageType.SCHEDULE_TIMER,
            correlation_id=initial["payment_id"],
            merchant_id=initial["merchant_id"],
            profile_id=initial["business_profile_id"],
            payload=ScheduleTimer(
                timer_id=f"webhook:{initial['_id']}:{next_index}",
                due_at=due,
                kind="webhook_retry",
                payment_id=initial["payment_id"],
                message=command.model_dump(mode="json"),
            ),
        )

        async def schedule(tx: Transaction) -> None:
            await self._events.update(
                initial["_id"],
                {
                    "status": EventStatus.RETRY_SCHEDULED,
                    "retry_index": next_index,
                    "next_retry_at": due,
                    "status_reason": reason,
                    "lease_until": None,
                },
                tx.session,
            )
            tx.emit(request)

        await self._store.apply(schedule)
        log.info("webhook.retry_scheduled", retry_index=next_index, due_at=due.isoformat(), reason=reason)


def retry_schedule(setting: str) -> RetrySchedule | None:
    if not setting.strip():
        return None
    return RetrySchedule.from_seconds(float(part) for part in setting.split(",") if part.strip())
