"""Composition root of the webhook dispatcher: builds the service from settings."""

from __future__ import annotations

from datetime import timedelta

from recovery_dispatcher.adapters.delivery import DeliveryTimeouts, SenderConfig, WebhookSender
from recovery_dispatcher.adapters.ssrf import SsrfGuard, SsrfPolicy
from recovery_dispatcher.adapters.store import INDEXES, EndpointStore, EventStore
from recovery_dispatcher.domain.policy import HYPERSWITCH_RETRY_SCHEDULE
from recovery_dispatcher.handlers import WebhookDispatcher, retry_schedule
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.service import Service

NAME = "dispatcher"


def build_service(settings: DispatcherSettings | None = None) -> Service:
    settings = settings or DispatcherSettings()
    service = Service(NAME, settings)
    service.add_indexes(INDEXES)

    def sender() -> WebhookSender:
        return WebhookSender(
            SsrfGuard(SsrfPolicy.from_setting(settings.webhook_allowed_cidrs)),
            SenderConfig(
                timeouts=DeliveryTimeouts(
                    connect=settings.webhook_connect_timeout_seconds,
                    total=settings.webhook_total_timeout_seconds,
                )
            ),
        )

    dispatcher = WebhookDispatcher(
        store=service.store,
        events=EventStore(service.db),
        endpoints=EndpointStore(service.db),
        sender_factory=sender,
        clock=service.clock,
        time_scale=service.time_scale,
        schedule=retry_schedule(settings.webhook_retry_schedule_seconds) or HYPERSWITCH_RETRY_SCHEDULE,
        lease=timedelta(seconds=settings.webhook_delivery_lease_seconds),
        instance_id=settings.service_instance_id,
        user_agent=settings.webhook_user_agent,
    )
    service.on_start(dispatcher.start)
    service.on_stop(dispatcher.close)
    service.consume("dispatcher.payment-succeeded", dispatcher.payment_succeeded)
    service.consume("dispatcher.payment-failed", dispatcher.payment_failed)
    service.consume("dispatcher.deliver-webhook", dispatcher.deliver_webhook)
    service.consume("dispatcher.profile-updated", dispatcher.profile_updated)
    return service
