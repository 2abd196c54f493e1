"""The scheduler's Prometheus series: recoveries, retries, decline classes, cards found hard-declined and the
merchants' marks on cards (timers: timer_loop.py).

Counted from a change once the unit of work has committed it, never inside the transaction's work: that may run
more than once when MongoDB retries the transaction.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter

from recovery_scheduler.domain.budget_writes import newly_hard_declined
from recovery_scheduler.domain.card_budgets import planned_attempt
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
CARDS_HARD_DECLINED = Counter(
    "recovery_cards_hard_declined_total",
    "Cards a recovery found hard-declined (a never decline), recorded for the merchant's other recoveries",
)
ATTEMPTS_DROPPED = Counter(
    "recovery_attempts_dropped_for_hard_declines_total",
    "Attempts planned on a card another recovery of the merchant found hard-declined, dropped before they were due",
)
ATTEMPTS_REFUSED = Counter(
    "recovery_attempts_refused_total",
    "Planned attempts the executor refused without sending them (payment.attempt-refused), by what the recovery did: "
    "asked the planner again later (replanned), or only recorded it (ended, or planned otherwise since)",
    ["then"],
)

TOKEN_STATUS_UPDATES = Counter(
    "recovery_token_status_updates_total",
    "Merchants' words on a card that changed it (PUT /v2/recovery/data-backfill/update-token): marked hard-declined, "
    "cleared, or scheduled (when it may next be tried)",
    ["update"],
)


def recovery_started(change: Change) -> None:
    algorithm = change.recovery.algorithm
    RECOVERIES_STARTED.labels(algorithm.value).inc()
    CARDS_HARD_DECLINED.inc(len(newly_hard_declined(change)))
    _count_end(algorithm, RecoveryStatus.SCHEDULED, change.recovery.status)


def attempt_failed(change: Change, outcome: str) -> None:
    if change.before is None or not change.changed:
        return  # an attempt recorded before
    algorithm = change.before.algorithm
    RETRIES.labels(algorithm.value, outcome).inc()
    DECLINES.labels(change.recovery.decline_class(change.recovery.attempts[-1]).value).inc()
    CARDS_HARD_DECLINED.inc(len(newly_hard_declined(change)))
    _count_end(algorithm, change.before.status, change.recovery.status)


def attempt_refused(change: Change) -> None:
    ATTEMPTS_REFUSED.labels("replanned" if change.timers else "recorded").inc()


def replanned(change: Change) -> None:
    """A re-plan timer's change: one that dropped a planned attempt is the check another recovery asked for."""
    if planned_attempt(change.before) is not None and change.cancels_planned_timers:
        ATTEMPTS_DROPPED.inc()
    if change.before is not None:
        _count_end(change.before.algorithm, change.before.status, change.recovery.status)


def payment_succeeded(change: Change) -> None:
    if change.before is None:
        return
    RETRIES.labels(change.before.algorithm.value, "succeeded").inc()
    _count_end(change.before.algorithm, change.before.status, change.recovery.status)


def _count_end(algorithm: Algorithm, before: RecoveryStatus, after: RecoveryStatus) -> None:
    """Count a recovery's end once: when a committed change moved it from open to succeeded or failed."""
    if before not in TERMINAL and after in (RecoveryStatus.SUCCEEDED, RecoveryStatus.FAILED):
        RECOVERIES_FINISHED.labels(algorithm.value, after.value).inc()


def token_status_updated(hard_declined: bool | None, scheduled_at: datetime | None) -> None:
    """Count a word that changed the card: each part said (`marked` or `cleared`; `scheduled`)."""
    if hard_declined is not None:
        TOKEN_STATUS_UPDATES.labels("marked" if hard_declined else "cleared").inc()
    if scheduled_at is not None:
        TOKEN_STATUS_UPDATES.labels("scheduled").inc()
