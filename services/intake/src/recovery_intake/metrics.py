"""Intake's Prometheus series: recovery requests by entry point and result."""

from __future__ import annotations

from prometheus_client import Counter

RECOVERY_REQUESTS = Counter(
    "recovery_recovery_requests_total",
    "Recovery requests accepted by intake, by entry point (http, broker) and result (new, existing)",
    ["entry", "result"],
)
