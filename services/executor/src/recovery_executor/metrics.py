"""The executor's Prometheus series: connector charges and their latency, the pacing before them, and the record
backs to billing systems (a recovered payment's, and the refund of a dispute lost on it).

Increment once per connector call or applied try (not per message: a redelivered command that finds its attempt
settled, or its record accepted, makes no call).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHARGES = Counter(
    "recovery_connector_charges_total",
    "Connector calls for a planned attempt, by connector and outcome (succeeded, declined, error, unknown, ...)",
    ["connector", "outcome"],
)
CHARGE_SECONDS = Histogram(
    "recovery_connector_charge_seconds",
    "Duration of one connector charge or sync call",
    ["connector"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
PACING_WAIT_SECONDS = Histogram(
    "recovery_connector_pacing_wait_seconds",
    "How long a connector request waited for its account's turn (a paced account; 0: its turn was now)",
    buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
PACING_ERRORS = Counter(
    "recovery_connector_pacing_errors_total",
    "Reservations of a connector account's turn the database did not answer: the requests went unpaced",
)
PACING_HOLDS = Counter(
    "recovery_connector_pacing_holds_total",
    "Times a paced account answered 429 and every executor held its turns for a second",
)
RECORD_BACK_TRIES = Counter(
    "recovery_record_back_tries_total",
    "Tries of a record back, by billing system (stripebilling, chargebee, recurly, custombilling), what it records "
    "(payment; refund: a dispute lost on it) and where the record stood after (accepted, retrying, abandoned, blocked)",
    ["billing_connector", "record", "state"],
)
DISPUTE_REFUNDS = Counter(
    "recovery_dispute_refunds_total",
    "Lost disputes on recovered payments, by the payment's billing system and what became of their refund record: "
    "created; duplicate (one existed); not_supported (the billing system takes none); no_record_back (the payment "
    "was never recorded back, billing_connector none where nothing was stored)",
    ["billing_connector", "outcome"],
)
