"""Composition root of intake: the HTTP API and the broker entry, built from settings."""

from __future__ import annotations

from datetime import timedelta

from recovery_intake.adapters.repository import INDEXES, IntakeRepository
from recovery_intake.handlers import RecoveryIntake
from recovery_intake.http import api_keys, connector_accounts, gateway, merchants, payments, profiles
from recovery_intake.http.auth import Authenticator
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import install_error_handlers
from recovery_intake.http.limits import AbuseLimits
from recovery_intake.settings import IntakeSettings
from recovery_intake.webhook_secrets import WebhookSecretRotation
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service

NAME = "intake"


def build_service(settings: IntakeSettings | None = None) -> Service:
    settings = settings or IntakeSettings()
    service = Service(NAME, settings)
    service.add_indexes(INDEXES)
    # A new intent embeds its `recovery.scheduled` (one insert, no transaction): the relay scans the intents too.
    service.add_indexes([service.unit_of_work.embed_outbox_in("payment_intents")])
    # Published records awaiting their batched removal are removed at shutdown (else the relay republishes them).
    service.on_stop(service.unit_of_work.remove_published)
    box = SecretBox.from_settings(settings)
    repository = IntakeRepository(service.db, cache_seconds=settings.config_cache_seconds)
    recovery = RecoveryIntake(
        repository,
        service.unit_of_work,
        service.clock,
        cell_id=settings.cell_id,
        monitoring_threshold_seconds=settings.monitoring_threshold_seconds,
    )
    webhook_secrets = WebhookSecretRotation(
        repository,
        service.unit_of_work,
        service.clock,
        box,
        default_overlap=timedelta(seconds=settings.webhook_secret_overlap_seconds),
        retirement_interval=settings.secret_retirement_interval_seconds,
    )
    ctx = ApiContext(
        settings=settings,
        repository=repository,
        auth=Authenticator(repository, settings.admin_api_key, settings.api_key_hash_secret),
        store=service.unit_of_work,
        clock=service.clock,
        recovery=recovery,
        box=box,
        webhook_secrets=webhook_secrets,
    )
    app = service.app
    app.title = "Revenue recovery API"
    app.version = "0.1.0"
    install_error_handlers(app)
    app.add_middleware(
        AbuseLimits,
        max_body_bytes=settings.max_body_bytes,
        per_second=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
    )
    for module in (merchants, profiles, api_keys, connector_accounts, payments):
        app.include_router(module.router(ctx))
    forwarder = gateway.Forwarder(settings.internal_api_token, settings.internal_timeout_seconds)
    app.include_router(gateway.router(ctx, forwarder))
    service.on_stop(forwarder.close)
    service.add_loop(webhook_secrets.run)
    service.consume("intake.recovery-requested", recovery.recovery_requested)
    service.consume("intake.payment-succeeded", recovery.payment_succeeded)
    service.consume("intake.payment-failed", recovery.payment_failed)
    return service
