"""Intake settings: the admin key, API-key hashing, retry defaults for new recoveries."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = 8080
    http_host: str = "127.0.0.1"
    # Only from configuration: there is no API to create or read it.
    admin_api_key: str = Field(default="test_admin", min_length=8)
    # Server-side secret of the keyed hash under which merchant API keys are stored.
    api_key_hash_secret: str = Field(default="development-only-api-key-hash-secret", min_length=16)
    # `snd` in sandbox/development, `prd` in production: the visible prefix of every merchant API key.
    api_key_environment: str = Field(default="snd", pattern=r"^(snd|prd)$")
    # Where intake forwards the events API and the process-tracker API (the owners of that data).
    dispatcher_internal_url: str = "http://127.0.0.1:8083"
    scheduler_internal_url: str = "http://127.0.0.1:8081"
    internal_timeout_seconds: float = Field(default=20.0, gt=0)
    # How long monitoring watches a profile's recoveries before the active algorithm takes over (0: forever).
    monitoring_threshold_seconds: int = Field(default=0, ge=0)
