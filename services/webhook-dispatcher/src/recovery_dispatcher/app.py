"""Composition root of the webhook dispatcher: builds the service from settings."""

from __future__ import annotations

from datetime import timedelta

from recovery_contracts.envelope import Envelope
from recovery_dispatcher import api
from recovery_dispatcher.adapters.delivery import DeliveryTimeouts, InProcessRetry, SenderConfig, WebhookSender
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.adapters.ssrf import SsrfGuard, SsrfPolicy
from recovery_dispatcher.adapters.store import INDEXES, EndpointStore, EventStore
from recovery_dispatcher.consumer import ConcurrentConsumer
from recovery_dispatcher.domain.breaker import BreakerPolicy
from recovery_dispatcher.domain.policy import HYPERSWITCH_RETRY_SCHEDULE, RetrySchedule
from recovery_dispatcher.handlers import WebhookDispatcher, retry_schedule
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service

NAME = "dispatcher"


def _payment_lane(envelope: Envelope[object]) -> str | None:
    # Messages of one payment are handled in arrival order; different payments in parallel.
    return envelope.correlation_id


def build_service(settings: DispatcherSettings | None = None) -> Service:
    settings = settings or DispatcherSettings()
    service = Service(NAME, settings)
    service.add_indexes(INDEXES)
    scale = service.time_scale

    def sender() -> WebhookSender:
        return WebhookSender(
            SsrfGuard(SsrfPolicy.from_setting(settings.webhook_allowed_cidrs)),
            SenderConfig(
                timeouts=DeliveryTimeouts(
                    connect=settings.webhook_connect_timeout_seconds,
                    total=settings.webhook_total_timeout_seconds,
                ),
                in_process_retry=InProcessRetry(
                    max_attempts=settings.webhook_in_process_attempts,
                    budget=settings.webhook_in_process_budget_seconds,
                ),
            ),
        )

    events = EventStore(service.db)
    max_retry_after = settings.webhook_max_retry_after_seconds
    default_schedule = HYPERSWITCH_RETRY_SCHEDULE
    schedule = retry_schedule(settings.webhook_retry_schedule_seconds, max_retry_after) or RetrySchedule(
        default_schedule.delays, max_retry_after=timedelta(seconds=max_retry_after)
    )
    dispatcher = WebhookDispatcher(
        store=service.unit_of_work,
        events=events,
        endpoints=EndpointStore(
            service.db, settings.webhook_endpoint_cache_seconds, secrets=SecretBox.from_settings(settings)
        ),
        writer=RecordWriter(
            events.collection,
            settings.webhook_record_flush_seconds,
            settings.webhook_record_batch,
            claims=events.claims,
        ),
        sender_factory=sender,
        clock=service.clock,
        time_scale=scale,
        schedule=schedule,
        lease=timedelta(seconds=settings.webhook_delivery_lease_seconds),
        instance_id=settings.service_instance_id,
        user_agent=settings.webhook_user_agent,
        breaker=BreakerPolicy(
            failure_threshold=settings.webhook_breaker_failures,
            cooldown=scale.wall(timedelta(seconds=settings.webhook_breaker_cooldown_seconds)),
            max_cooldown=scale.wall(timedelta(seconds=settings.webhook_breaker_max_cooldown_seconds)),
            probe_timeout=timedelta(seconds=settings.webhook_total_timeout_seconds * 4),
        ),
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
    )
    consumer = ConcurrentConsumer(service.broker, service.publisher, settings.webhook_max_in_flight)
    service.on_start(dispatcher.start)
    service.on_drain(lambda: consumer.close(settings.shutdown_grace_seconds))
    service.on_stop(dispatcher.close)
    for queue_name, handler in (
        ("dispatcher.payment-succeeded", dispatcher.payment_succeeded),
        ("dispatcher.payment-failed", dispatcher.payment_failed),
        ("dispatcher.deliver-webhook", dispatcher.deliver_webhook),
    ):
        # Service.consume handles one message at a time; deliveries need many in flight.
        service.add_subscriber(consumer.subscribe(queue_name, handler, _payment_lane))
    service.consume("dispatcher.profile-updated", dispatcher.profile_updated)
    service.app.include_router(api.router(events, dispatcher, InternalCaller(settings.internal_api_token)))
    return service
