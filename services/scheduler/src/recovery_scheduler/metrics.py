"""The scheduler's Prometheus series: recoveries, retries and decline classes (timers: timer_loop.py).

Counted from a change once the unit of work has committed it, never inside the transaction's work: that may run
more than once when MongoDB retries the transaction.
"""

from __future__ import annotations

from prometheus_client import Counter

from recovery_scheduler.domain.model import Algorithm
from recovery_scheduler.domain.planning import Change
from recovery_scheduler.domain.status import TERMINAL, RecoveryStatus

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


def recovery_started(change: Change) -> None:
    algorithm = change.recovery.algorithm
    RECOVERIES_STARTED.labels(algorithm.value).inc()
    _count_end(algorithm, RecoveryStatus.SCHEDULED, change.recovery.status)


def attempt_failed(change: Change, outcome: str) -> None:
    if change.before is None or not change.changed:
        return  # an attempt recorded before
    algorithm = change.before.algorithm
    RETRIES.labels(algorithm.value, outcome).inc()
    DECLINES.labels(change.recovery.decline_class(change.recovery.attempts[-1]).value).inc()
    _count_end(algorithm, change.before.status, change.recovery.status)


def payment_succeeded(change: Change) -> None:
    if change.before is None:
        return
    RETRIES.labels(change.before.algorithm.value, "succeeded").inc()
    _count_end(change.before.algorithm, change.before.status, change.recovery.status)


def _count_end(algorithm: Algorithm, before: RecoveryStatus, after: RecoveryStatus) -> None:
    """Count a recovery's end once: when a committed change moved it from open to succeeded or failed."""
    if before not in TERMINAL and after in (RecoveryStatus.SUCCEEDED, RecoveryStatus.FAILED):
        RECOVERIES_FINISHED.labels(algorithm.value, after.value).inc()
