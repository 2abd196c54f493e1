"""The executor's Prometheus series: connector charges and their latency, and the pacing before them.

Increment once per connector call (not per message: a redelivered command that finds its attempt settled
makes no call).
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
