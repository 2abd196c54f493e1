"""Composition root of intake: the HTTP API and the broker entry, built from settings and adapters."""

from __future__ import annotations

from datetime import timedelta

import httpx

from recovery_intake.adapters import audit_log, configuration, intents, rate_limits, saved_cards
from recovery_intake.adapters.chargebee import ChargebeeApi
from recovery_intake.adapters.configuration import (
    ApiKeyRepository,
    ConnectorAccountRepository,
    MerchantRepository,
    ProfileRepository,
)
from recovery_intake.adapters.intents import IntentRepository
from recovery_intake.adapters.rate_limits import MongoSharedRates
from recovery_intake.adapters.recurly import RecurlyApi
from recovery_intake.adapters.stripe_billing import StripeBillingApi
from recovery_intake.adapters.stripe_payments import StripePaymentsApi
from recovery_intake.console import adapters as console_adapters
from recovery_intake.console import routes as console
from recovery_intake.console.dispute_pages import CONSOLE_EVIDENCE, CONSOLE_EVIDENCE_BYTES
from recovery_intake.console.merchant_pages import CARD_DATA_UPLOAD
from recovery_intake.dependencies import IntakeAdapters
from recovery_intake.handlers.api_keys import ApiKeyIssuer
from recovery_intake.handlers.billing_events import BillingEvents, TransactionReader
from recovery_intake.handlers.connector_accounts import ConnectorAccountSetup
from recovery_intake.handlers.dispute_answers import DisputeAnswers
from recovery_intake.handlers.merchants import MerchantOnboarding
from recovery_intake.handlers.outcomes import PaymentOutcomes
from recovery_intake.handlers.payment_events import PaymentEvents
from recovery_intake.handlers.profiles import ProfileSettings
from recovery_intake.handlers.recovery import RecoveryIntake
from recovery_intake.handlers.secret_rotation import SecretRotation
from recovery_intake.http import (
    api_keys,
    audit,
    billing_webhooks,
    connector_accounts,
    data_backfill,
    disputes,
    gateway,
    merchants,
    payment_webhooks,
    payments,
    profiles,
    recovery_views,
)
from recovery_intake.http.auth import Authenticator
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import install_error_handlers
from recovery_intake.http.limits import AbuseLimits, AuthFailures
from recovery_intake.settings import IntakeSettings
from recovery_runtime.adapters.payment_fences import MongoPaymentFences
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service
from recovery_runtime.unit_of_work import UnitOfWork

NAME = "intake"


def build_service(
    settings: IntakeSettings | None = None,
    adapters: IntakeAdapters | None = None,
    *,
    recurly: TransactionReader | None = None,
) -> Service:
    """Intake on MongoDB and RabbitMQ, or on `adapters` (unit tests pass in-memory ones, and may pass a scripted
    Recurly for the API its webhooks' transactions are read from)."""
    settings = settings or IntakeSettings()
    service, adapters = Service.on_adapters(
        NAME, settings, adapters, lambda service: _mongodb_adapters(service, settings)
    )
    box = SecretBox.from_settings(settings)
    http_hosts = settings.http_allowed_hosts
    recovery = RecoveryIntake(
        adapters,
        cell_id=settings.cell_id,
        monitoring_threshold_seconds=settings.monitoring_threshold_seconds,
        requests_kept=settings.intent_requests_kept,
    )
    secret_rotation = SecretRotation(
        adapters,
        box,
        default_overlap=timedelta(seconds=settings.webhook_secret_overlap_seconds),
        retirement_interval=settings.secret_retirement_interval_seconds,
    )
    # Billing systems' webhooks and the payment connector's (their invoices, transactions and PaymentIntents are
    # read through the egress policy's client), and the merchant's answers to disputes, sent through it.
    billing_http = guarded_http_client(EgressGuard(EgressPolicy.from_setting(settings.outbound_allowed_cidrs)))
    service.on_stop(billing_http.aclose)
    read_budget = settings.billing_api_timeout_seconds
    stripe_payments = StripePaymentsApi(
        settings.stripe_api_base, billing_http, read_budget, files_url=settings.stripe_files_base
    )
    payment_events = PaymentEvents(adapters, box, stripe_payments)
    ctx = ApiContext(
        settings=settings,
        auth=Authenticator(
            adapters,
            settings.admin_api_key,
            settings.api_key_hash_secret,
            AuthFailures(settings.auth_failure_per_second, settings.auth_failure_burst, shared=adapters.shared_rates),
        ),
        box=box,
        stored=adapters,
        recovery=recovery,
        merchants=MerchantOnboarding(adapters),
        profiles=ProfileSettings(
            adapters, box, http_allowed_hosts=http_hosts, max_profiles=settings.max_profiles_per_merchant
        ),
        secret_rotation=secret_rotation,
        api_keys=ApiKeyIssuer(
            adapters,
            environment=settings.api_key_environment,
            hash_secret=settings.api_key_hash_secret,
            max_keys=settings.max_api_keys_per_merchant,
        ),
        connector_accounts=ConnectorAccountSetup(adapters, box, http_allowed_hosts=http_hosts),
        disputes=DisputeAnswers(adapters, box, stripe_payments, payment_events),
    )
    app = service.app
    app.title = "Revenue recovery API"
    app.version = "0.1.0"
    install_error_handlers(app, identify=ctx.auth.identify)
    # Inside the abuse limits: a request they refuse never reached a route (and names no caller).
    app.add_middleware(audit.AuditTrail, trail=adapters.audit, clock=adapters.clock)
    app.add_middleware(
        AbuseLimits,
        max_body_bytes=settings.max_body_bytes,
        body_limits={
            **{path: data_backfill.BODY_BYTES for path in (data_backfill.PATH, CARD_DATA_UPLOAD)},
            disputes.FILES: disputes.FILE_BODY_BYTES,
            CONSOLE_EVIDENCE: CONSOLE_EVIDENCE_BYTES,
        },
        per_second=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        shared=adapters.shared_rates,
    )
    forwarder = gateway.Forwarder(settings.internal_api_token, settings.internal_timeout_seconds)
    # Before `payments`: `/v2/payments/recovery-list` is not a payment id.
    app.include_router(recovery_views.router(ctx, forwarder))
    for module in (merchants, profiles, api_keys, connector_accounts, payments, disputes, data_backfill, audit):
        app.include_router(module.router(ctx))
    app.include_router(gateway.router(ctx, forwarder))
    stripe_billing = StripeBillingApi(settings.stripe_api_base, billing_http, read_budget)
    recurly = recurly or RecurlyApi(billing_http, read_budget)
    chargebee = ChargebeeApi(billing_http, read_budget)
    billing_events = BillingEvents(adapters, box, recovery, stripe_billing, recurly, chargebee)
    app.include_router(billing_webhooks.router(billing_events))
    app.include_router(payment_webhooks.router(payment_events))
    service.on_stop(forwarder.close)
    # The web console (/console/): its pages read through the same internal APIs the gateway forwards to.
    console_http = httpx.AsyncClient(timeout=settings.internal_timeout_seconds, follow_redirects=False)
    service.on_stop(console_http.aclose)
    console.install(app, ctx, console_adapters.http_adapters(settings, service.readiness, console_http))
    service.add_loop(secret_rotation.run)
    outcomes = PaymentOutcomes(adapters)
    service.consume("intake.recovery-requested", recovery.recovery_requested)
    service.consume("intake.recovery-cancel-requested", recovery.cancel_requested)
    # The same billing systems' events, handed on by a deployment's own ingress: the webhook route's handler.
    service.consume("intake.billing-event", billing_events.billing_event)
    service.consume("intake.payment-succeeded", outcomes.payment_succeeded)
    service.consume("intake.payment-failed", outcomes.payment_failed)
    return service


def _mongodb_adapters(service: Service, settings: IntakeSettings) -> IntakeAdapters:
    unit_of_work = service.unit_of_work
    assert isinstance(unit_of_work, UnitOfWork)  # the service's own, on MongoDB
    service.add_indexes(
        configuration.INDEXES + intents.INDEXES + rate_limits.INDEXES + saved_cards.INDEXES + audit_log.INDEXES
    )
    # A new intent embeds its `recovery.scheduled` (one insert, no transaction): the relay scans the intents too.
    service.add_indexes([unit_of_work.embed_outbox_in(intents.COLLECTION)])
    cache_seconds = settings.config_cache_seconds
    return IntakeAdapters(
        intents=IntentRepository(service.db),
        merchants=MerchantRepository(service.db),
        profiles=ProfileRepository(service.db, cache_seconds),
        api_keys=ApiKeyRepository(service.db, cache_seconds, settings.unknown_api_key_cache_seconds),
        connector_accounts=ConnectorAccountRepository(service.db, cache_seconds),
        unit_of_work=unit_of_work,
        clock=service.clock,
        saved_cards=saved_cards.SavedCardRepository(service.db, cache_seconds),
        payment_fences=MongoPaymentFences(service.db),
        audit=audit_log.MongoAuditLog(service.db, timedelta(days=settings.audit_retention_days)),
        shared_rates=MongoSharedRates(service.db, service.clock) if settings.rate_limit_shared else None,
    )
