"""Composition root of the executor: builds the service from settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from recovery_executor.adapters.billing import HttpBillingRecorder
from recovery_executor.adapters.metered import MeteredConnector
from recovery_executor.adapters.repository import (
    INDEXES,
    AttemptRepository,
    CredentialRepository,
    PaymentStateRepository,
    RecordBackRepository,
)
from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.domain.ports import PaymentConnector
from recovery_executor.handlers import (
    AttemptRunner,
    ChargeGuard,
    ConnectorAccountUpdatedHandler,
    ExecuteRetryHandler,
    PaymentSyncHandler,
    RecordBackHandler,
    RecoveryUpdatedHandler,
)
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.bus import MessageRejected
from recovery_runtime.secrets import SecretBox, is_sealed
from recovery_runtime.service import Service

NAME = "executor"


def build_service(settings: ExecutorSettings | None = None) -> Service:
    settings = settings or ExecutorSettings()
    service = Service(NAME, settings)
    service.add_indexes(INDEXES)
    # A settled attempt embeds its outcome messages (one write, no transaction): the relay scans attempts too.
    service.add_indexes([service.store.embed_outbox_in("attempts")])
    # Published records awaiting their batched removal are removed at shutdown (else the relay republishes them).
    service.on_stop(service.store.remove_published)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.connector_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    service.on_stop(http.aclose)
    box = SecretBox.from_settings(settings)

    def connector_for(account: dict[str, Any]) -> PaymentConnector:
        if account.get("connector_name") != "stripe":
            raise MessageRejected(f"connector {account.get('connector_name')!r} is not supported for charges")
        api_key = account.get("api_key") or ""
        stripe = StripeConnector(
            base_url=settings.stripe_api_base,
            # Intake publishes credentials sealed (recovery_runtime.secrets); opened only here, for the call.
            api_key=box.open(api_key) if is_sealed(api_key) else api_key,
            http_client=http,
            timeout=settings.connector_timeout_seconds,
        )
        return MeteredConnector(stripe, "stripe")

    attempts = AttemptRepository(service.db)
    credentials = CredentialRepository(service.db, cache_seconds=settings.credentials_cache_seconds)
    states = PaymentStateRepository(service.db)
    runner = AttemptRunner(
        store=service.store,
        attempts=attempts,
        guard=ChargeGuard(states, attempts),
        clock=service.clock,
        time_scale=service.time_scale,
        instance_id=settings.service_instance_id,
    )
    common = {
        "runner": runner,
        "attempts": attempts,
        "credentials": credentials,
        "connector_for": connector_for,
        "publisher": service.publisher,
        "clock": service.clock,
        "abandoned_after": timedelta(seconds=settings.abandoned_attempt_seconds),
    }
    service.consume("executor.execute-retry", ExecuteRetryHandler(**common))
    service.consume("executor.payment-sync", PaymentSyncHandler(**common))
    service.consume(
        "executor.record-back",
        RecordBackHandler(
            store=service.store,
            records=RecordBackRepository(service.db),
            recorder=HttpBillingRecorder(http, timeout=settings.record_back_timeout_seconds),
            clock=service.clock,
            time_scale=service.time_scale,
        ),
    )
    service.consume("executor.recovery-updated", RecoveryUpdatedHandler(service.store, states, service.clock))
    service.consume("executor.connector-account-updated", ConnectorAccountUpdatedHandler(service.store, credentials))
    return service
