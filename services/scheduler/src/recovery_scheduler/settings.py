"""Scheduler settings: timer polling and leases."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    http_port: int = 8081
    timer_poll_seconds: float = Field(default=0.1, gt=0)
    timer_batch_size: int = Field(default=200, ge=1, le=5000)
    # A claimed timer whose instance died is claimed again once its lease expires.
    timer_lease_seconds: float = Field(default=30.0, gt=0)
