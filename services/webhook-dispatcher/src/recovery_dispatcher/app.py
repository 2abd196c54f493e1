"""Composition root of the webhook dispatcher: builds the service from settings and its adapters (the only
module that knows the concrete classes)."""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from recovery_dispatcher import http
from recovery_dispatcher.adapters.breaker_repository import MongoBreakerRepository
from recovery_dispatcher.adapters.delivery_slots import DeliverySlots
from recovery_dispatcher.adapters.endpoint_health import SharedEndpointHealth
from recovery_dispatcher.adapters.endpoint_repository import MongoEndpointRepository
from recovery_dispatcher.adapters.endpoint_status import MongoEndpointStatus
from recovery_dispatcher.adapters.event_queries import MongoEventQueries
from recovery_dispatcher.adapters.event_repository import INDEXES, MongoEventRepository
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.adapters.sender import DeliveryTimeouts, InProcessRetry, SenderConfig, WebhookSender
from recovery_dispatcher.dependencies import (
    BreakerRepository,
    EndpointRepository,
    EndpointStatusReads,
    EventQueries,
    EventRepository,
    Sender,
)
from recovery_dispatcher.domain.breaker import BreakerPolicy
from recovery_dispatcher.domain.policy import HYPERSWITCH_RETRY_SCHEDULE, RetrySchedule
from recovery_dispatcher.handlers.deliver_webhook import deliver_webhook
from recovery_dispatcher.handlers.delivery import Delivery
from recovery_dispatcher.handlers.leases import DeliveryLeases
from recovery_dispatcher.handlers.manual_retry import manual_retry
from recovery_dispatcher.handlers.payment_events import (
    dispute_lost,
    dispute_updated,
    payment_cancelled,
    payment_failed,
    payment_succeeded,
)
from recovery_dispatcher.handlers.profile_updated import profile_updated
from recovery_dispatcher.handlers.recover_failed import FailedEventsRecovery
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.consumer import Lanes
from recovery_runtime.egress import EgressGuard, EgressPolicy
from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service
from recovery_runtime.unit_of_work import UnitOfWorkPort

NAME = "dispatcher"


@dataclass(frozen=True)
class DispatcherAdapters:
    events: EventRepository
    queries: EventQueries
    endpoints: EndpointRepository
    breakers: BreakerRepository
    sender: Sender
    unit_of_work: UnitOfWorkPort
    publisher: Publisher
    clock: Clock
    # The endpoint-health reads of the internal API (None: the route is not served, as in handler unit tests).
    endpoint_status: EndpointStatusReads | None = None


def mongo_adapters(
    settings: DispatcherSettings,
    *,
    db: AsyncDatabase[dict[str, Any]],
    unit_of_work: UnitOfWorkPort,
    publisher: Publisher,
    clock: Clock,
) -> DispatcherAdapters:
    """The production adapters: MongoDB repositories (records written in batches), the aiohttp sender."""
    writer = RecordWriter(
        db["webhook_events"],
        settings.webhook_record_flush_seconds,
        settings.webhook_record_batch,
        claims=db["webhook_claims"],
    )
    sender = WebhookSender(
        EgressGuard(EgressPolicy.from_setting(settings.outbound_allowed_cidrs)),
        SenderConfig(
            timeouts=DeliveryTimeouts(
                connect=settings.webhook_connect_timeout_seconds, total=settings.webhook_total_timeout_seconds
            ),
            in_process_retry=InProcessRetry(
                max_attempts=settings.webhook_in_process_attempts, budget=settings.webhook_in_process_budget_seconds
            ),
        ),
    )
    in_memory = settings.webhook_endpoints_in_memory
    endpoints = MongoEndpointRepository(
        db, settings.webhook_endpoint_cache_seconds, secrets=SecretBox.from_settings(settings), max_cached=in_memory
    )
    return DispatcherAdapters(
        events=MongoEventRepository(db, writer),
        queries=MongoEventQueries(db),
        endpoints=endpoints,
        breakers=MongoBreakerRepository(db, settings.webhook_endpoint_health_cache_seconds, max_cached=in_memory),
        sender=sender,
        unit_of_work=unit_of_work,
        publisher=publisher,
        clock=clock,
        endpoint_status=MongoEndpointStatus(db),
    )


def delivery_of(settings: DispatcherSettings, adapters: DispatcherAdapters, scale: TimeScale) -> Delivery:
    """The handlers' dependencies. Breaker durations and holds are wall-clock (scaled here); schedules are
    schedule time."""
    health = SharedEndpointHealth(
        adapters.endpoints,
        adapters.breakers,
        adapters.unit_of_work,
        breaker=BreakerPolicy(
            failure_threshold=settings.webhook_breaker_failures,
            cooldown=scale.wall(timedelta(seconds=settings.webhook_breaker_cooldown_seconds)),
            max_cooldown=scale.wall(timedelta(seconds=settings.webhook_breaker_max_cooldown_seconds)),
            probe_timeout=timedelta(seconds=settings.webhook_total_timeout_seconds * 4),
        ),
        disable_after=scale.wall(timedelta(seconds=settings.webhook_disable_after_seconds)),
        slow_after=timedelta(seconds=settings.webhook_slow_response_seconds),
    )
    slots = DeliverySlots(
        per_endpoint=settings.webhook_endpoint_concurrency,
        # Never below one endpoint's slots: a merchant's one endpoint may always use all of its own.
        per_merchant=max(settings.webhook_merchant_max_in_flight, settings.webhook_endpoint_concurrency),
        max_in_flight=settings.webhook_max_in_flight,
        slow_max_in_flight=settings.webhook_slow_max_in_flight or max(1, settings.webhook_max_in_flight // 2),
        prompt_seconds=settings.webhook_prompt_delivery_seconds,
        busy_wait=settings.webhook_busy_wait_seconds,
        min_hold=scale.wall(timedelta(seconds=settings.webhook_busy_hold_seconds)),
        max_hold=scale.wall(timedelta(seconds=settings.webhook_busy_max_hold_seconds)),
        max_endpoints=settings.webhook_endpoints_in_memory,
    )
    # The lease owner: this process (host names repeat across processes on one machine).
    owner = f"{settings.service_instance_id}/{os.getpid()}-{secrets.token_hex(4)}"
    return Delivery(
        events=adapters.events,
        endpoints=adapters.endpoints,
        health=health,
        slots=slots,
        sender=adapters.sender,
        unit_of_work=adapters.unit_of_work,
        clock=adapters.clock,
        leases=DeliveryLeases(owner, timedelta(seconds=settings.webhook_delivery_lease_seconds)),
        schedule=_retry_schedule(settings),
        time_scale=scale.scale,
        user_agent=settings.webhook_user_agent,
    )


def _retry_schedule(settings: DispatcherSettings) -> RetrySchedule:
    """WEBHOOK_RETRY_SCHEDULE_SECONDS (comma-separated seconds), or Hyperswitch's schedule when it is empty."""
    setting = settings.webhook_retry_schedule_seconds
    max_retry_after = settings.webhook_max_retry_after_seconds
    if not setting.strip():
        return RetrySchedule(HYPERSWITCH_RETRY_SCHEDULE.delays, max_retry_after=timedelta(seconds=max_retry_after))
    seconds = (float(part) for part in setting.split(",") if part.strip())
    return RetrySchedule.from_seconds(seconds, max_retry_after_seconds=max_retry_after)


def build_service(settings: DispatcherSettings | None = None, adapters: DispatcherAdapters | None = None) -> Service:
    settings = settings or DispatcherSettings()
    service, adapters = Service.on_adapters(
        NAME,
        settings,
        adapters,
        lambda service: mongo_adapters(
            settings, db=service.db, unit_of_work=service.unit_of_work, publisher=service.publisher, clock=service.clock
        ),
    )
    service.add_indexes(INDEXES)
    service.on_stop(adapters.events.close)
    service.on_stop(adapters.sender.aclose)
    delivery = delivery_of(settings, adapters, service.time_scale)
    # Messages of one payment, whichever of the six queues they come from, are handled in arrival order
    # (webhooks of a payment go out in sequence); different payments side by side. The lanes carry no in-flight
    # bound: a bound taken before the handler would be held by a message waiting behind its payment's slow
    # delivery, and by every delivery for the whole of its request. WEBHOOK_MAX_IN_FLIGHT is taken by the
    # delivery itself (DeliverySlots), after its endpoint's slot, and only while its endpoint answers promptly.
    payment_lanes = Lanes()
    for queue_name, handler in (
        ("dispatcher.payment-succeeded", payment_succeeded),
        ("dispatcher.payment-failed", payment_failed),
        ("dispatcher.payment-cancelled", payment_cancelled),
        ("dispatcher.dispute-lost", dispute_lost),
        ("dispatcher.dispute-updated", dispute_updated),
        ("dispatcher.deliver-webhook", deliver_webhook),
    ):
        service.consume(
            queue_name,
            functools.partial(handler, delivery),
            lane_of=lambda envelope: envelope.correlation_id,
            lanes=payment_lanes,
        )
    service.consume(
        "dispatcher.profile-updated", functools.partial(profile_updated, adapters.endpoints, adapters.unit_of_work)
    )
    caller = InternalCaller(settings.internal_api_token)
    service.app.include_router(
        http.router(
            adapters.events,
            adapters.queries,
            functools.partial(manual_retry, delivery),
            FailedEventsRecovery(delivery, adapters.queries),
            caller,
        )
    )
    if adapters.endpoint_status is not None:
        service.app.include_router(http.endpoints_router(adapters.endpoint_status, caller))
    return service
