"""Settings every service reads from its environment (one variable per field, upper-case)."""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    cell_id: str = "12345"
    # Shared by the services for their internal HTTP endpoints (intake forwards authenticated API calls).
    internal_api_token: str = Field(default="development-only-internal-token", min_length=16)
