"""Composition root of the executor: builds the service from settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from recovery_executor.adapters.repository import INDEXES, AttemptRepository, CredentialRepository
from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.domain.ports import PaymentConnector
from recovery_executor.handlers import ConnectorAccountUpdatedHandler, ExecuteRetryHandler
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.bus import MessageRejected
from recovery_runtime.service import Service

NAME = "executor"


def build_service(settings: ExecutorSettings | None = None) -> Service:
    settings = settings or ExecutorSettings()
    service = Service(NAME, settings)
    service.add_indexes(INDEXES)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.connector_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )
    service.on_stop(http.aclose)

    def connector_for(account: dict[str, Any]) -> PaymentConnector:
        if account.get("connector_name") != "stripe":
            raise MessageRejected(f"connector {account.get('connector_name')!r} is not supported for charges")
        return StripeConnector(
            base_url=settings.stripe_api_base,
            api_key=account.get("api_key") or "",
            http_client=http,
            timeout=settings.connector_timeout_seconds,
        )

    attempts = AttemptRepository(service.db)
    credentials = CredentialRepository(service.db)
    service.consume(
        "executor.execute-retry",
        ExecuteRetryHandler(
            store=service.store,
            attempts=attempts,
            credentials=credentials,
            connector_for=connector_for,
            publisher=service.publisher,
            clock=service.clock,
            instance_id=settings.service_instance_id,
            abandoned_after=timedelta(seconds=settings.abandoned_attempt_seconds),
        ),
    )
    service.consume("executor.connector-account-updated", ConnectorAccountUpdatedHandler(service.store, credentials))
    return service
