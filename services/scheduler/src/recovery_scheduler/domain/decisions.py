"""What the planner decides: charge at a time, look again later, end the recovery, or only observe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EndOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED_HARD_DECLINE = "failed_hard_decline"  # every token hard-declined
    ACTION_REQUIRED = "action_required"  # no token left that may be charged off-session (customer / fix)
    RETRIES_EXHAUSTED = "retries_exhausted"  # ladder, max_retry_count, retry window or token caps used up
    HORIZON_REACHED = "horizon_reached"  # the recovery's horizon passed, whatever it was waiting for


class BusinessStatus(StrEnum):
    """Process-tracker business statuses (Hyperswitch's, plus three of ours where it has none)."""

    COMPLETED_EXECUTE_TASK = "COMPLETED_EXECUTE_TASK"
    CALCULATE_WORKFLOW_SCHEDULED = "CALCULATE_WORKFLOW_SCHEDULED"
    FAILED_DUE_TO_HARD_DECLINE_ERROR = "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    FAILED_DUE_TO_RETRIES_EXHAUSTED = "FAILED_DUE_TO_RETRIES_EXHAUSTED"
    FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED = "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED"
    FAILED_DUE_TO_HORIZON_REACHED = "FAILED_DUE_TO_HORIZON_REACHED"


BUSINESS_STATUS_BY_OUTCOME: dict[EndOutcome, BusinessStatus] = {
    EndOutcome.SUCCEEDED: BusinessStatus.COMPLETED_EXECUTE_TASK,
    EndOutcome.FAILED_HARD_DECLINE: BusinessStatus.FAILED_DUE_TO_HARD_DECLINE_ERROR,
    EndOutcome.RETRIES_EXHAUSTED: BusinessStatus.FAILED_DUE_TO_RETRIES_EXHAUSTED,
    EndOutcome.ACTION_REQUIRED: BusinessStatus.FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED,
    EndOutcome.HORIZON_REACHED: BusinessStatus.FAILED_DUE_TO_HORIZON_REACHED,
}


@dataclass(frozen=True)
class ScheduleAttempt:
    """Charge `token` at `at` as this system's attempt `attempt_number` (1-based)."""

    at: datetime
    token: str
    attempt_number: int
    reason: str


@dataclass(frozen=True)
class Recheck:
    """Nothing may be charged now (a budget used up, an outcome unknown): call `decide_next` again at `at`."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class AwaitBillingSystem:
    """The billing system has not used its own retries yet (`billing_connector_retry_threshold`): no task.

    Nothing is scheduled; the next failure it reports (a higher billing_retry_count) asks again.
    """

    reason: str


@dataclass(frozen=True)
class EndRecovery:
    outcome: EndOutcome
    reason: str
    business_status: str
    # Send `payment_failed` (event and webhook): a failure end after at least one attempt of this system.
    emits_payment_failed: bool = False


@dataclass(frozen=True)
class Observe:
    """Monitoring: charge nothing; `shadow` is what the active algorithm would do now."""

    shadow: ScheduleAttempt | Recheck | EndRecovery | AwaitBillingSystem
    switch_at: datetime | None


Decision = ScheduleAttempt | Recheck | EndRecovery | AwaitBillingSystem | Observe


def end_recovery(outcome: EndOutcome, reason: str, attempts_made: int) -> EndRecovery:
    return EndRecovery(
        outcome,
        reason,
        BUSINESS_STATUS_BY_OUTCOME[outcome].value,
        emits_payment_failed=outcome is not EndOutcome.SUCCEEDED and attempts_made > 0,
    )
