"""Settings every service reads from its environment (one variable per field, upper-case)."""

from __future__ import annotations

import socket
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_INTERNAL_TOKEN = "development-only-internal-token"
# The services a deployment may leave out: the read side. The others are the recovery pipeline itself.
OPTIONAL_SERVICES = frozenset({"analytics"})


def absent_services_in(listed: str) -> frozenset[str]:
    """The services an UNDEPLOYED_SERVICES value names; ValueError when it names one that may not be left out."""
    absent = frozenset(name.strip() for name in listed.split(",") if name.strip())
    required = sorted(absent - OPTIONAL_SERVICES)
    if required:
        raise ValueError(
            f"UNDEPLOYED_SERVICES names {', '.join(required)}: only {', '.join(sorted(OPTIONAL_SERVICES))} "
            "may be left out of a deployment"
        )
    return absent


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongodb_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongodb_database: str = "recovery"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    service_instance_id: str = Field(default_factory=socket.gethostname)
    log_level: str = "INFO"
    # Wall-clock seconds = schedule seconds / time_scale. 1.0 in production; the demo and tests compress days.
    time_scale: float = Field(default=1.0, gt=0)
    prefetch_count: int = Field(default=100, ge=1, le=1000)
    # How long a message's effect may take before shutdown gives up and requeues it.
    shutdown_grace_seconds: float = Field(default=20.0, gt=0)
    # Outbox records older than this are republished by the relay (a crash between commit and publish).
    outbox_relay_after_seconds: float = Field(default=5.0, gt=0)
    inbox_retention_days: int = Field(default=14, ge=1)
    # A publish not confirmed within this long fails (the outbox keeps the message; the relay retries it).
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often a service checks that its consumers still exist and re-creates lost ones (faststream#2758).
    consumer_watchdog_seconds: float = Field(default=2.0, gt=0)
    # TEST ONLY (the fault suite): publish every message twice, to prove consumers de-duplicate. Never in
    # production: it doubles broker traffic and the services refuse it when API_KEY_ENVIRONMENT=prd.
    duplicate_deliveries_for_tests: bool = False
    cell_id: str = "12345"
    # Shared by the services for their internal HTTP endpoints (intake forwards authenticated API calls).
    internal_api_token: str = Field(default=DEVELOPMENT_INTERNAL_TOKEN, min_length=16)
    # `prd` marks a production deployment (and makes merchant API keys `prd_...`): every service then refuses
    # to start with a development default (docs/security.md lists what must be configured).
    api_key_environment: Literal["snd", "prd"] = "snd"
    # Master keys sealing secrets at rest and on the broker (recovery_runtime.secrets): base64 of 32 bytes.
    # One key: SECRETS_MASTER_KEY (id SECRETS_MASTER_KEY_ID). Rotation: SECRETS_MASTER_KEYS="id:key,id:key"
    # with SECRETS_ACTIVE_KEY_ID naming the one that seals; values sealed under any listed key stay readable.
    secrets_master_key: str | None = Field(default=None, repr=False)
    secrets_master_key_id: str = Field(default="main", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    secrets_master_keys: str | None = Field(default=None, repr=False)
    secrets_active_key_id: str | None = None
    # The egress policy (recovery_runtime.egress): non-global networks that outbound calls whose destination a
    # merchant controls (webhooks, record back, billing APIs) may reach. WEBHOOK_ALLOWED_CIDRS is its old name.
    outbound_allowed_cidrs: str = Field(
        default="", validation_alias=AliasChoices("outbound_allowed_cidrs", "webhook_allowed_cidrs")
    )
    # Traces (OpenTelemetry): the OTLP/HTTP collector every service sends its spans to (Jaeger's
    # `http://jaeger:4318` in compose); unset, tracing is off. The standard OTEL_* variables apply too
    # (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*): docs/operations.md.
    otel_exporter_otlp_endpoint: str | None = None
    # Optional services this deployment does not run (comma-separated; only `analytics`, the read side, may be
    # left out). Every consumer queue is declared up front (by each service, or by the deploy step) so that no
    # event is lost to start-up order; the queues of a service that never runs would only fill until RabbitMQ's
    # memory or disk alarm blocks every publisher. Their queues are not declared (docs/deployment.md, "Leaving out
    # the read side").
    undeployed_services: str = ""
    # Who declares the broker topology (exchanges, queues, bindings). true: every service, at start-up (its broker
    # user needs configure rights). false: a deploy step, once per release (`recovery topology declare`, the
    # Kubernetes Job `recovery-topology`); the service then only checks, with passive declares, that its exchanges
    # and queues are there (waiting until they are) and its broker user needs no configure permission at all
    # (docs/security.md, "RabbitMQ").
    declare_topology: bool = True

    @property
    def absent_services(self) -> frozenset[str]:
        """The services named in UNDEPLOYED_SERVICES (validated: optional ones only)."""
        return absent_services_in(self.undeployed_services)

    @property
    def is_production(self) -> bool:
        return self.api_key_environment == "prd"

    def production_problems(self) -> list[str]:
        """What a production deployment must not run with; empty when all is configured."""
        # The master key is checked where it is used: SecretBox.from_settings refuses production without one.
        problems = []
        if self.internal_api_token == DEVELOPMENT_INTERNAL_TOKEN:
            problems.append("INTERNAL_API_TOKEN is the development default")
        if self.duplicate_deliveries_for_tests:
            problems.append("DUPLICATE_DELIVERIES_FOR_TESTS is set (a fault-test switch)")
        if urlsplit(self.rabbitmq_url).password in (None, "", "guest"):
            problems.append("RABBITMQ_URL has no credentials of its own (guest or none)")
        return problems

    @model_validator(mode="after")
    def _only_optional_services_left_out(self) -> ServiceSettings:
        absent_services_in(self.undeployed_services)
        return self

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> ServiceSettings:
        if self.is_production and (problems := self.production_problems()):
            raise ValueError("refusing to start in production (API_KEY_ENVIRONMENT=prd): " + "; ".join(problems))
        return self


class _Deployment(BaseSettings):
    """UNDEPLOYED_SERVICES alone, from the environment as ServiceSettings reads it, for the operator's commands
    (dead letters, the topology), which have none of a service's other settings."""

    model_config = ServiceSettings.model_config

    undeployed_services: str = ""


def undeployed_services() -> frozenset[str]:
    """The services this deployment leaves out (UNDEPLOYED_SERVICES), read and checked as every service does."""
    return absent_services_in(_Deployment().undeployed_services)
