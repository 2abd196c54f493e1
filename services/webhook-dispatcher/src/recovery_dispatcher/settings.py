"""Webhook-dispatcher settings: delivery timeouts, SSRF allow-list, retry schedule."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class DispatcherSettings(ServiceSettings):
    http_port: int = 8083
    # CIDRs a webhook URL may resolve to although they are not global (loopback in the demo and tests).
    webhook_allowed_cidrs: str = ""
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_total_timeout_seconds: float = Field(default=15.0, gt=0)
    # Comma-separated seconds; empty means Hyperswitch's schedule (+60 s, 5 min x2, 10 min x5, 1 h x5, 6 h x3).
    webhook_retry_schedule_seconds: str = ""
    # How long one dispatcher may hold an event it is delivering before another may take it over.
    webhook_delivery_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_user_agent: str = "recovery-engine-webhooks/1"
