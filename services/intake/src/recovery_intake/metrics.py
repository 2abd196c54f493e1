"""Intake's Prometheus series: recovery requests by entry point and result; the shared rate limits' errors."""

from __future__ import annotations

from prometheus_client import Counter

RECOVERY_REQUESTS = Counter(
    "recovery_recovery_requests_total",
    "Recovery requests accepted by intake, by entry point (http, broker) and result (new, existing)",
    ["entry", "result"],
)
SHARED_RATE_LIMIT_ERRORS = Counter(
    "recovery_shared_rate_limit_errors_total",
    "Requests let through because the shared rate limits (MongoDB) did not answer; the per-process limits held",
)
