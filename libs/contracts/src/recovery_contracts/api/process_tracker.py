"""Operator API `/v2/process-trackers/revenue-recovery-workflow/{payment_id}` and the timeline extension."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from recovery_contracts.api.analytics import RecoveryStatus
from recovery_contracts.api.fields import RequestBody, ResponseBody
from recovery_contracts.timestamps import UtcMillis


class ProcessTrackerStatus(StrEnum):
    NEW = "new"
    PENDING = "pending"
    PROCESS_STARTED = "process_started"
    PROCESSING = "processing"
    FINISH = "finish"
    REVIEW = "review"


class RevenueRecoveryTask(StrEnum):
    CALCULATE_WORKFLOW = "CALCULATE_WORKFLOW"
    EXECUTE_WORKFLOW = "EXECUTE_WORKFLOW"
    PSYNC_WORKFLOW = "PSYNC_WORKFLOW"


class BusinessStatus(StrEnum):
    """Hyperswitch's business statuses of the recovery tasks, then this project's extensions."""

    PENDING = "Pending"
    COMPLETED_EXECUTE_TASK = "COMPLETED_EXECUTE_TASK"
    FAILED_EXECUTE_TASK = "FAILED_EXECUTE_TASK"
    COMPLETED_EXECUTE_TASK_TO_TRIGGER_PSYNC = "COMPLETED_EXECUTE_TASK_TO_TRIGGER_PSYNC"
    COMPLETED_EXECUTE_TASK_TO_TRIGGER_REVIEW = "COMPLETED_EXECUTE_TASK_TO_TRIGGER_REVIEW"
    TRIGGER_REQUEUE_FOR_EXECUTE_WORKFLOW = "TRIGGER_REQUEUE_FOR_EXECUTE_WORKFLOW"
    COMPLETED_PSYNC_TASK = "COMPLETED_PSYNC_TASK"
    CALCULATE_WORKFLOW_SCHEDULED = "CALCULATE_WORKFLOW_SCHEDULED"
    FAILED_DUE_TO_HARD_DECLINE_ERROR = "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    # Extensions: Hyperswitch re-runs hourly forever when the ladder or max_retry_count runs out, and has no
    # cancel_invoice; this system ends the recovery instead.
    FAILED_DUE_TO_RETRIES_EXHAUSTED = "FAILED_DUE_TO_RETRIES_EXHAUSTED"
    CANCELLED_BY_BILLING_CONNECTOR = "CANCELLED_BY_BILLING_CONNECTOR"
    # The merchant cancelled the recovery by the invoice's reference (`POST /v2/revenue-recovery/{ref}/cancel`).
    CANCELLED_BY_MERCHANT = "CANCELLED_BY_MERCHANT"
    COMPLETED_BY_EXTERNAL_PAYMENT = "COMPLETED_BY_EXTERNAL_PAYMENT"
    # The card needs the customer (expired, closed account...): no retry can succeed.
    FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED = "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED"
    # The recovery's horizon (RECOVERY_HORIZON_SECONDS after the payment was created) passed.
    FAILED_DUE_TO_HORIZON_REACHED = "FAILED_DUE_TO_HORIZON_REACHED"


class RevenueRecoveryResponse(ResponseBody):
    id: str
    name: str | None = None
    schedule_time_for_payment: UtcMillis | None = None
    schedule_time_for_psync: UtcMillis | None = None
    status: ProcessTrackerStatus
    business_status: BusinessStatus


class RevenueRecoveryResumeRequest(RequestBody):
    """`POST /v2/process-trackers/revenue-recovery-workflow/{payment_id}/resume`: Hyperswitch's
    `RevenueRecoveryRetriggerRequest` as juspay/hyperswitch#13572 left it. `schedule_time` when the resumed task runs
    (absent: now); `status` and `business_status`, the overrides Hyperswitch writes on its process-tracker row, are
    taken and change nothing here (a workflow's status is derived from the recovery, never stored apart);
    `retry_count`, Hyperswitch's override of the row's retry count, is refused by intake's route (a resume here plans
    one attempt, whatever the ladder's position: docs/retry-engine.md, "Process-tracker API")."""

    revenue_recovery_task: RevenueRecoveryTask
    schedule_time: UtcMillis | None = None
    status: ProcessTrackerStatus | None = None
    business_status: BusinessStatus | None = None
    retry_count: int | None = None


# --- extension: `GET /v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline` ----------------


class TimelineEntryKind(StrEnum):
    RECOVERY_ACCEPTED = "recovery_accepted"
    RETRY_SCHEDULED = "retry_scheduled"
    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_SUCCEEDED = "attempt_succeeded"
    ATTEMPT_FAILED = "attempt_failed"
    PSYNC_SCHEDULED = "psync_scheduled"
    WEBHOOK_DELIVERED = "webhook_delivered"
    WEBHOOK_FAILED = "webhook_failed"
    RECORD_BACK = "record_back"
    RECOVERY_UPDATED = "recovery_updated"
    RECOVERY_FINISHED = "recovery_finished"
    # A recovery in monitoring: what one of the compared algorithms (cascading, smart) would have done.
    SHADOW_PLANNED = "shadow_planned"
    # The payment connector decided a dispute on the recovered payment against the merchant (the money went back),
    # and each try of recording it at the billing system as a refund (not the payment's record back).
    DISPUTE_LOST = "dispute_lost"
    REFUND_RECORD = "refund_record"
    # The steps of a dispute's course before (or instead of) a loss: opened, challenged (evidence under review), won,
    # or an inquiry cancelled.
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_CHALLENGED = "dispute_challenged"
    DISPUTE_WON = "dispute_won"
    DISPUTE_CANCELLED = "dispute_cancelled"


class RecoveryTimelineEntry(ResponseBody):
    at: UtcMillis
    kind: TimelineEntryKind
    attempt_number: int | None = None
    token: Annotated[str, Field(max_length=255)] | None = None
    event_id: str | None = None
    detail: Annotated[str, Field(max_length=1024)] | None = None


class TimelineAttempt(ResponseBody):
    """One attempt as the read model saw it: the card it used, and the connector's answer."""

    attempt_number: int
    attempt_id: str
    token: str
    card_network: str | None = None
    outcome: str
    at: UtcMillis
    decline_code: str | None = None
    error_code: str | None = None
    decline_class: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    message: str | None = None
    connector_transaction_id: str | None = None


class TimelineRequest(ResponseBody):
    """The failed invoice payment as it was accepted."""

    merchant_reference_id: str
    amount: int
    currency: str
    created_at: UtcMillis
    algorithm: str
    billing_connector_id: str
    payment_connector_id: str
    tokens: list[str]
    first_error_code: str | None = None
    first_error_message: str | None = None


class TimelineRecordBackTry(ResponseBody):
    """One try of recording the recovered payment back at the billing system (extension)."""

    attempt: int
    at: UtcMillis
    billing_connector: str
    # Where the record back stood after this try: retrying, accepted, abandoned or blocked.
    state: str
    status_code: int | None = None
    error: str | None = None


class TimelineShadowPlan(ResponseBody):
    """What one algorithm would have done at a planning step of a recovery in monitoring (extension): `kind`
    `attempt` (`attempt_number` with `token` at `at`), `replan` (at `at`), `end` (`outcome`) or
    `AwaitBillingSystem`; `at` in business time. `takes_over`: the profile's active algorithm."""

    planned_at: UtcMillis
    algorithm: str
    takes_over: bool
    kind: str
    reason: Annotated[str, Field(max_length=1024)]
    at: UtcMillis | None = None
    token: str | None = None
    attempt_number: int | None = None
    outcome: str | None = None


class TimelineDispute(ResponseBody):
    """A dispute the payment connector decided against the merchant on the recovered payment (extension): what it
    took back, when, why, and the tries of recording it at the billing system as a refund (`refund_record`, its own
    tries: the payment's record back is `record_back`)."""

    dispute_id: str
    connector: str
    connector_dispute_id: str
    # Minor units, as the request's `amount`.
    amount: int
    currency: str
    reason: str | None = None
    lost_at: UtcMillis
    refund_record: list[TimelineRecordBackTry] = Field(default_factory=list)


class RecoveryTimelineResponse(ResponseBody):
    """What happened to one payment, oldest first: accepted, planned and made attempts, webhooks, the end.

    `entries` is the merged story; `request`, `attempts`, `record_back`, `shadow_plans` and `disputes` (extensions)
    the same facts as records."""

    payment_id: str
    status: ProcessTrackerStatus
    business_status: BusinessStatus
    # The recovery's status as the recovery list and intent show it, from the same view as the rest of the answer,
    # so a page showing both never mixes two moments (extension). Absent from a timeline the read side stored
    # before 4 Dec 2026, until the payment's next event or `recovery analytics rebuild`.
    recovery_status: RecoveryStatus | None = None
    entries: list[RecoveryTimelineEntry]
    request: TimelineRequest | None = None
    attempts: list[TimelineAttempt] = Field(default_factory=list)
    record_back: list[TimelineRecordBackTry] = Field(default_factory=list)
    shadow_plans: list[TimelineShadowPlan] = Field(default_factory=list)
    # Disputes lost on the payment after it was recovered, oldest first. Absent (empty) from a timeline stored
    # before disputes were read, until the payment's next event or `recovery analytics rebuild`.
    disputes: list[TimelineDispute] = Field(default_factory=list)
