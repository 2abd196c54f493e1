"""The dispatcher's Prometheus series."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

from recovery_dispatcher.domain.fairness import BusyReason
from recovery_dispatcher.domain.status import EventOutcome

DELIVERY_ATTEMPTS = Counter(
    "recovery_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome", "delivery_attempt"]
)
DELIVERY_SECONDS = Histogram("recovery_webhook_attempt_seconds", "Duration of one webhook delivery attempt")
EVENTS_FINISHED = Counter(
    "recovery_webhook_events_finished_total",
    f"Webhook events that reached a final status ({', '.join(EventOutcome)})",
    ["result"],
)
RETRIES_SCHEDULED = Counter("recovery_webhook_retries_scheduled_total", "Durable webhook retries scheduled", ["why"])
ENDPOINTS_DISABLED = Counter("recovery_webhook_endpoints_disabled_total", "Endpoints disabled", ["reason"])
EVENTS_RECOVERED = Counter(
    "recovery_webhook_events_recovered_total", "Failed webhook events delivered again at the merchant's request"
)
# Opened minus closed by this process: the sum over the dispatchers is the number of open circuits (one process
# may open a circuit that another closes).
CIRCUITS_OPEN = Gauge("recovery_webhook_circuits_open", "Endpoint circuits this process opened less those it closed")
SLOW_RESPONSES = Counter(
    "recovery_webhook_slow_responses_total", "Attempts that took WEBHOOK_SLOW_RESPONSE_SECONDS or longer"
)
DELIVERIES_PARKED = Counter(
    "recovery_webhook_deliveries_parked_total",
    f"Deliveries parked on a timer instead of waiting ({', '.join(BusyReason)})",
    ["reason"],
)
EVENTS_NOT_RAISED = Counter(
    "recovery_webhook_events_not_raised_total", "Payment events of a type the profile switched off", ["event_type"]
)
DISPUTE_EVENTS_OVERTAKEN = Counter(
    "recovery_webhook_dispute_events_overtaken_total",
    "Dispute events not raised because one further along was raised for the dispute first",
    ["event_type"],
)


# The labelled children of the per-delivery series, looked up once (`labels()` costs a lock and a dict lookup
# on every call, on a path that runs for every delivery).
@functools.cache
def delivery_attempts(outcome: str, kind: str) -> Counter:
    return DELIVERY_ATTEMPTS.labels(outcome, kind)


@functools.cache
def events_finished(result: str) -> Counter:
    return EVENTS_FINISHED.labels(result)


@functools.cache
def deliveries_parked(reason: str) -> Counter:
    return DELIVERIES_PARKED.labels(reason)


@functools.cache
def events_not_raised(event_type: str) -> Counter:
    return EVENTS_NOT_RAISED.labels(event_type)
