"""Analytics settings: its port and how far back an analytics request may look."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    http_port: int = 8084
    # The widest `from`..`to` an analytics request may span, in days (each day is one document per profile).
    analytics_max_days: int = Field(default=400, ge=1, le=3660)
    # Messages of one payment are folded one after another in this process (ordering lanes); this many at once.
    # At most 64: each is a transaction holding a part of its day of its own (handlers.DayParts, 64 parts, which
    # every read of a day sums), so more in flight would only wait for a part. More throughput: more instances.
    analytics_max_in_flight: int = Field(default=32, ge=1, le=64)
