"""An endpoint's health as an operator reads it: its breaker, its disabled flag and failing period, and how its
recent delivery attempts went (success rate, answer latency)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .breaker import CircuitBreaker


@dataclass(frozen=True)
class AttemptSample:
    """One recorded delivery attempt: whether the endpoint took it, and how long it took to answer (ms)."""

    delivered: bool
    duration_ms: int | None


@dataclass(frozen=True)
class RecentDeliveries:
    attempts: int
    delivered: int
    success_rate: float | None
    latency_ms_mean: float | None
    latency_ms_p90: int | None


def recent_deliveries(samples: Iterable[AttemptSample]) -> RecentDeliveries:
    """The success rate and the answer latency (mean, nearest-rank p90) of the attempts sampled."""
    taken = list(samples)
    durations = sorted(s.duration_ms for s in taken if s.duration_ms is not None)
    delivered = sum(1 for s in taken if s.delivered)
    return RecentDeliveries(
        attempts=len(taken),
        delivered=delivered,
        success_rate=delivered / len(taken) if taken else None,
        latency_ms_mean=sum(durations) / len(durations) if durations else None,
        latency_ms_p90=durations[math.ceil(0.9 * len(durations)) - 1] if durations else None,
    )


@dataclass(frozen=True)
class EndpointStatus:
    """One endpoint (a profile's URL). `current`: the profile's URL now (False: a URL it used before)."""

    profile_id: str
    url: str
    current: bool
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    breaker: CircuitBreaker
    slow_responses: int
    last_slow_at: datetime | None
    recent: RecentDeliveries

    @property
    def disabled(self) -> bool:
        """Deliveries stopped: switched off by the merchant, or disabled by the dispatcher (410, long failure)."""
        return not self.enabled or self.disabled_reason is not None
