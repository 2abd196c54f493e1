"""Composition root of the executor: builds the service from settings, or around the adapters it is given."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import httpx

from recovery_executor import http
from recovery_executor.adapters.attempts import ATTEMPT_INDEXES, ATTEMPTS, MongoAttemptRepository
from recovery_executor.adapters.billing import HttpBillingRecorder
from recovery_executor.adapters.billing_systems import BillingSystemRecorder
from recovery_executor.adapters.connector_accounts import MongoConnectorAccountRepository
from recovery_executor.adapters.connectors import StripeConnectors
from recovery_executor.adapters.pacing import INDEXES as PACING_INDEXES
from recovery_executor.adapters.pacing import MongoConnectorPacing
from recovery_executor.adapters.payment_states import MongoPaymentStateRepository
from recovery_executor.adapters.record_backs import RECORD_BACK_INDEXES, MongoRecordBackRepository
from recovery_executor.dependencies import ChargeLease, Dependencies, ExecutorAdapters
from recovery_executor.domain.pacing import Pace
from recovery_executor.handlers import HANDLERS
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.adapters.payment_fences import MongoPaymentFences
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service
from recovery_runtime.unit_of_work import UnitOfWork

NAME = "executor"


def build_service(settings: ExecutorSettings | None = None, adapters: ExecutorAdapters | None = None) -> Service:
    settings = settings or ExecutorSettings()
    service, adapters = Service.on_adapters(
        NAME, settings, adapters, lambda service: _mongo_and_http_adapters(service, settings)
    )
    dependencies = Dependencies.of(
        adapters,
        time_scale=service.time_scale,
        instance_id=settings.service_instance_id,
        abandoned_after=timedelta(seconds=settings.abandoned_attempt_seconds),
        charge_lease=ChargeLease(timedelta(seconds=settings.charge_lease_seconds)),
    )
    for queue_name, handle in HANDLERS.items():
        service.consume(queue_name, partial(handle, dependencies))
    service.app.include_router(http.router(dependencies, InternalCaller(settings.internal_api_token)))
    return service


def _mongo_and_http_adapters(service: Service, settings: ExecutorSettings) -> ExecutorAdapters:
    unit_of_work = service.unit_of_work
    assert isinstance(unit_of_work, UnitOfWork)
    service.add_indexes([*ATTEMPT_INDEXES, *RECORD_BACK_INDEXES, *PACING_INDEXES])
    # A settled attempt embeds its outcome messages (one write, no transaction): the relay scans attempts too.
    service.add_indexes([unit_of_work.embed_outbox_in(ATTEMPTS)])
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.connector_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    service.on_stop(http.aclose)
    # Record-back URLs are the merchant's: their calls go through the egress policy (Stripe's base is ours).
    egress = EgressGuard(EgressPolicy.from_setting(settings.outbound_allowed_cidrs))
    record_back_http = guarded_http_client(egress, timeout=settings.record_back_timeout_seconds)
    service.on_stop(record_back_http.aclose)
    connector_accounts = MongoConnectorAccountRepository(service.db, cache_seconds=settings.credentials_cache_seconds)
    box = SecretBox.from_settings(settings)
    default_pace = None
    if settings.connector_requests_per_second > 0:
        default_pace = Pace(settings.connector_requests_per_second, settings.connector_request_burst)
    return ExecutorAdapters(
        unit_of_work=unit_of_work,
        publisher=service.publisher,
        clock=service.clock,
        attempts=MongoAttemptRepository(service.db),
        payment_states=MongoPaymentStateRepository(service.db),
        connector_accounts=connector_accounts,
        record_backs=MongoRecordBackRepository(service.db),
        connectors=StripeConnectors(
            settings.stripe_api_base,
            http,
            box,
            settings.connector_timeout_seconds,
            pacing=MongoConnectorPacing(service.db, service.clock),
            default_pace=default_pace,
        ),
        billing=HttpBillingRecorder(record_back_http, timeout=settings.record_back_timeout_seconds),
        payment_fences=MongoPaymentFences(service.db),
        billing_systems=BillingSystemRecorder(
            stripe_api_base=settings.stripe_api_base,
            http_client=record_back_http,
            box=box,
            accounts=connector_accounts,
            timeout=settings.record_back_timeout_seconds,
        ),
    )
