"""Intake's Prometheus series: recovery requests by entry point and result; billing systems' webhook deliveries by
system, door and outcome; the payment connector's webhook deliveries by connector and outcome; the shared rate
limits' errors."""

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
BILLING_EVENTS = Counter(
    "recovery_billing_events_total",
    "Billing systems' webhook deliveries, by billing system (stripebilling, chargebee, recurly; for a delivery refused"
    " before its account is found, the one an ingress named, else unknown), door (http, broker) and outcome"
    " (applied, duplicate, ignored, refused_unauthenticated, refused_not_found, refused_invalid, unavailable: the"
    " billing system's API did not answer, deferred: a cancel waiting for a charge in flight, error)",
    ["billing_system", "door", "outcome"],
)
AUDIT_WRITE_FAILURES = Counter(
    "recovery_audit_write_failures_total",
    "Audit trail entries not written (the database did not take them): each is logged whole (audit.write_failed)",
)
DISPUTE_ANSWERS = Counter(
    "recovery_dispute_answers_total",
    "The merchant's answers to disputes sent to the payment connector, by action (accept, evidence) and outcome"
    " (answered, refused: the connector refused it, unavailable: the connector did not answer, error)",
    ["action", "outcome"],
)
PAYMENT_CONNECTOR_EVENTS = Counter(
    "recovery_payment_connector_events_total",
    "Payment connectors' webhook deliveries (POST /v2/webhooks/...), by connector (stripe) and outcome (applied: a"
    " lost dispute recorded, duplicate, ignored: another event, a dispute not lost or not on a payment a recovery"
    " collected, refused_unauthenticated, refused_not_found, refused_invalid, unavailable: the connector's API did"
    " not answer, error)",
    ["connector", "outcome"],
)
