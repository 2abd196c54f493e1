"""The scheduler's Prometheus series: recoveries, retries and decline classes (timers: timer_loop.py).

Increment after the unit of work commits (after `store.apply(...)` returns), never inside the transaction
callback: a callback may run more than once when MongoDB retries the transaction.
"""

from __future__ import annotations

from prometheus_client import Counter

RECOVERIES_STARTED = Counter(
    "recovery_recoveries_started_total", "Recoveries the scheduler started, by retry algorithm", ["algorithm"]
)
RECOVERIES_FINISHED = Counter(
    "recovery_recoveries_finished_total",
    "Recoveries that ended, by retry algorithm and outcome (succeeded, failed)",
    ["algorithm", "outcome"],
)
RETRIES = Counter(
    "recovery_retries_total",
    "Retry attempts whose outcome reached the scheduler, by algorithm and outcome (succeeded, declined, error)",
    ["algorithm", "outcome"],
)
DECLINES = Counter(
    "recovery_declines_total",
    "Declined attempts by decline class (never, fix, customer, later, technical)",
    ["decline_class"],
)
