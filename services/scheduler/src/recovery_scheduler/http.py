"""The scheduler's internal endpoints: the process-tracker API (`/v2/process-trackers/revenue-recovery-workflow/
...`), the retry statistics (`/v2/revenue-recovery/retry-stats`) and the merchant's cards: a card's status and the
merchant's word on it (`/v2/recovery/data-backfill/token-status`, `/v2/recovery/data-backfill/update-token`).

Intake authenticates the merchant and forwards the call here (recovery_runtime.internal_api); every read is
scoped to that merchant, and to the profile on a profile-level call, so another merchant's or another profile's
payment id answers 404 as an unknown one. The retry statistics are the merchant's whole (they are not kept per
profile).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from recovery_contracts.api.data_backfill import (
    TokenHardDecline,
    TokenStatusResponse,
    UpdateTokenStatusRequest,
    UpdateTokenStatusResponse,
)
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.fields import EXTERNAL_REFERENCE_CHARS
from recovery_contracts.api.process_tracker import (
    BusinessStatus,
    ProcessTrackerStatus,
    RevenueRecoveryResumeRequest,
    RevenueRecoveryTask,
)
from recovery_contracts.api.retry_stats import RetryStatsBucket, RetryStatsGroup, RetryStatsResponse
from recovery_contracts.timestamps import format_ms
from recovery_runtime.internal_api import InternalCaller, InternalScope
from recovery_scheduler import handlers
from recovery_scheduler.dependencies import Dependencies
from recovery_scheduler.domain.card_budgets import MERCHANT_MARK_LIFETIME, CardBudget
from recovery_scheduler.domain.model import Attempt
from recovery_scheduler.domain.plans import AttemptPlan, ReplanPlan, describe_plan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.retry_stats import Bucketing, Counts, RetryStats
from recovery_scheduler.domain.timers import PSYNC_PURPOSES

log = structlog.get_logger(__name__)

RUNNER = "PASSIVE_RECOVERY_WORKFLOW"
# An attempt as operators see it (in this order), then its decline class when it failed.
ATTEMPT_FIELDS = (
    "number",
    "attempt_id",
    "token",
    "at",
    "outcome",
    "decline_code",
    "error_code",
    "advice_code",
    "network_advice_code",
    "network_decline_code",
    "message",
    "connector_transaction_id",
)


def tracker_view(
    recovery: Recovery, psync_due: datetime | None, budgets: Mapping[str, CardBudget] | None = None
) -> dict[str, Any]:
    """Hyperswitch's `{id, name, schedule_time_for_payment, schedule_time_for_psync, status, business_status}`,
    then this system's extension: the plan, the shadow plans, tokens (with this payment's reservations in the
    merchant's network budget on each card, from `budgets`), attempts with their decline class, and the timeline of
    what happened or was planned and why."""
    plan = recovery.plan
    business: str
    if psync_due is not None:
        task, business = RevenueRecoveryTask.PSYNC_WORKFLOW, BusinessStatus.COMPLETED_EXECUTE_TASK_TO_TRIGGER_PSYNC
    elif recovery.ended:
        task, business = RevenueRecoveryTask.EXECUTE_WORKFLOW, recovery.business_status or "COMPLETED_EXECUTE_TASK"
    elif isinstance(plan, AttemptPlan):
        task, business = RevenueRecoveryTask.EXECUTE_WORKFLOW, BusinessStatus.PENDING
    elif isinstance(plan, ReplanPlan):
        task, business = RevenueRecoveryTask.CALCULATE_WORKFLOW, BusinessStatus.CALCULATE_WORKFLOW_SCHEDULED
    else:
        task, business = RevenueRecoveryTask.CALCULATE_WORKFLOW, BusinessStatus.PENDING
    finished = recovery.ended and psync_due is None
    hard = set(recovery.hard_declined_tokens)
    view: dict[str, Any] = {
        "id": f"{RUNNER}_{task.value}_{recovery.payment_id}",
        "name": task.value,
        "schedule_time_for_payment": plan.due_at if isinstance(plan, AttemptPlan) else None,
        "schedule_time_for_psync": psync_due,
        "status": (ProcessTrackerStatus.FINISH if finished else ProcessTrackerStatus.PENDING).value,
        "business_status": str(business),
        # -- extension --
        "payment_id": recovery.payment_id,
        "algorithm": recovery.algorithm.value,
        "recovery_status": recovery.status.value,
        "plan": describe_plan(plan) if plan is not None else None,
        "tokens": [
            {
                "token": t.token,
                "card_network": t.card_network,
                "last_four_digits": t.last_four_digits,
                **_hard_declined(recovery, t.token in hard, (budgets or {}).get(t.token)),
                **_reservations(recovery, (budgets or {}).get(t.token)),
                # The card's retries before this system, as the merchant's backfill reported them (budgets count them).
                "prior_retries": [{"at": p.at, "count": p.count} for p in t.prior_retries],
            }
            for t in recovery.payment.tokens
        ],
        "billing_retry_count": recovery.payment.billing_retry_count,
        "attempts": [_attempt(recovery, a) for a in recovery.attempts],
        "timeline": [note.describe() for note in recovery.history],
    }
    return {key: _json(value) for key, value in view.items()}


def _hard_declined(recovery: Recovery, here: bool, budget: CardBudget | None) -> dict[str, Any]:
    """Whether the card may no longer be charged: a `never` decline this recovery met, or one another recovery of
    the merchant met on it (`hard_declined_in`: that payment's id; None when it was this one's, or none), or the
    merchant's mark (`hard_declined_by_merchant`)."""
    elsewhere = budget.hard_declined_elsewhere(recovery.payment_id) if budget is not None else None
    shown = elsewhere if elsewhere is not None and not here else None
    return {
        "hard_declined": here or elsewhere is not None,
        "hard_declined_in": shown.payment_id if shown is not None and not shown.by_merchant else None,
        "hard_declined_by_merchant": shown is not None and shown.by_merchant,
    }


def _reservations(recovery: Recovery, budget: CardBudget | None) -> dict[str, Any]:
    """The slots this payment holds in the merchant's network budget on the card, each with its attempt's outcome
    as the recovery recorded it (`planned` until then: the stored slot keeps the outcome of its card's last write),
    and how many the merchant's other recoveries hold."""
    if budget is None:
        return {}
    made = {a.number: a.outcome.value for a in recovery.attempts}
    own = [
        {"attempt_number": r.attempt_number, "at": r.at, "outcome": made.get(r.attempt_number, r.outcome)}
        for r in budget.reservations
        if r.payment_id == recovery.payment_id
    ]
    return {"budget_reservations": own, "other_recoveries_reservations": len(budget.others(recovery.payment_id))}


def _attempt(recovery: Recovery, attempt: Attempt) -> dict[str, Any]:
    values = {**vars(attempt), **asdict(attempt.codes)}
    shown = {name: values[name] for name in ATTEMPT_FIELDS}
    shown["outcome"] = attempt.outcome.value
    if attempt.outcome.value in ("declined", "error"):
        shown["decline_class"] = recovery.decline_class(attempt).value
    return shown


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_ms(value)
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def _error(error: ApiError, **params: Any) -> JSONResponse:
    body = error.response(**params).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=error.status_code)


def router(deps: Dependencies, caller: InternalCaller) -> APIRouter:
    api = APIRouter(prefix="/internal/recoveries", include_in_schema=False)

    async def recovery_of(scope: InternalScope, merchant_id: str, payment_id: str) -> Recovery | None:
        """The recovery the call may see: another merchant's, or another profile's on a profile-level call, is
        None, as one that does not exist."""
        if scope.merchant_id != merchant_id:
            return None
        recovery = await deps.recoveries.of_merchant(scope.merchant_id, payment_id)
        if recovery is None or not scope.owns(recovery.merchant_id, recovery.payment.profile_id):
            return None
        return recovery

    async def view_of(recovery: Recovery) -> dict[str, Any]:
        psync_due = await deps.timers.next_due(recovery.payment_id, PSYNC_PURPOSES)
        tokens = [t.token for t in recovery.payment.tokens]
        budgets = await deps.card_budgets.read(recovery.merchant_id, tokens)
        return tracker_view(recovery, psync_due, budgets)

    @api.get("/{merchant_id}/{payment_id}")
    async def get_recovery(merchant_id: str, payment_id: str, scope: InternalScope = Depends(caller)) -> Any:
        recovery = await recovery_of(scope, merchant_id, payment_id)
        return await view_of(recovery) if recovery is not None else _error(ApiError.PAYMENT_NOT_FOUND)

    @api.post("/{merchant_id}/{payment_id}/resume")
    async def resume_recovery(
        merchant_id: str,
        payment_id: str,
        body: RevenueRecoveryResumeRequest,
        scope: InternalScope = Depends(caller),
    ) -> Any:
        if await recovery_of(scope, merchant_id, payment_id) is None:
            return _error(ApiError.PAYMENT_NOT_FOUND)
        refused = await handlers.resume(deps, scope.merchant_id, payment_id, body)
        if refused is not None:
            return _error(ApiError.PRECONDITION_FAILED, message=refused)
        resumed = await recovery_of(scope, merchant_id, payment_id)
        return await view_of(resumed) if resumed is not None else _error(ApiError.PAYMENT_NOT_FOUND)

    return api


def retry_stats_view(merchant_id: str, stats: list[RetryStats]) -> RetryStatsResponse:
    """Each key with its counts and success rates, in total and per bucket (UTC)."""

    def buckets(part: RetryStats, bucketing: Bucketing) -> list[RetryStatsBucket]:
        return [_bucket(n, part.bucket(bucketing, n)) for n in bucketing.buckets]

    total = sum((part.total for part in stats), Counts())
    return RetryStatsResponse(
        merchant_id=merchant_id,
        attempts=total.attempts,
        successes=total.successes,
        success_rate=total.success_rate,
        data=[
            RetryStatsGroup(
                decline_code=part.key.decline_code,
                card_network=part.key.card_network,
                funding=part.key.funding,
                attempts=part.total.attempts,
                successes=part.total.successes,
                success_rate=part.total.success_rate,
                day_of_week=buckets(part, Bucketing.DAY_OF_WEEK),
                day_of_month=buckets(part, Bucketing.DAY_OF_MONTH),
                hour_of_day=buckets(part, Bucketing.HOUR_OF_DAY),
            )
            for part in stats
        ],
    )


def _bucket(bucket: int, counts: Counts) -> RetryStatsBucket:
    return RetryStatsBucket(
        bucket=bucket, attempts=counts.attempts, successes=counts.successes, success_rate=counts.success_rate
    )


def retry_stats_router(deps: Dependencies, caller: InternalCaller) -> APIRouter:
    api = APIRouter(prefix="/internal/retry-stats", include_in_schema=False)

    @api.get("/{merchant_id}")
    async def get_retry_stats(merchant_id: str, scope: InternalScope = Depends(caller)) -> Any:
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        view = retry_stats_view(merchant_id, await deps.retry_stats.of_merchant(merchant_id))
        return view.model_dump(mode="json")

    return api


def token_status_view(budget: CardBudget, now: datetime) -> TokenStatusResponse:
    """The card as the merchant's recoveries see it: its hard declines (the merchant's mark and those they met),
    and their use of it as the networks' budgets count it."""
    usage = budget.usage(now)
    return TokenStatusResponse(
        payment_processor_token=budget.token,
        hard_declined=bool(budget.hard_declines),
        scheduled_at=budget.not_before_at(now),
        hard_declines=[
            TokenHardDecline(
                payment_id=None if d.by_merchant else d.payment_id,
                marked_by_merchant=d.by_merchant,
                attempt_number=d.attempt_number,
                at=d.at,
                rule=d.source,
                counts_until=d.lasts_until,
            )
            for d in budget.hard_declines
        ],
        attempts_last_30_days=usage.attempts,
        declined_last_30_days=usage.declined,
        planned_attempts=usage.planned,
    )


def _schedule_refused(body: UpdateTokenStatusRequest, now: datetime) -> str | None:
    """Why a `scheduled_at` is not taken: with a card marked hard-declined (no try at all), or further ahead than
    a merchant's mark holds (a year)."""
    if body.scheduled_at is None:
        return None
    if body.is_hard_decline:
        return "scheduled_at goes with a card that may be charged: not with is_hard_decline: true"
    if body.scheduled_at > now + MERCHANT_MARK_LIFETIME:
        return f"scheduled_at may be at most {MERCHANT_MARK_LIFETIME.days} days ahead"
    return None


def cards_router(deps: Dependencies, caller: InternalCaller) -> APIRouter:
    api = APIRouter(prefix="/internal/cards", include_in_schema=False)

    @api.get("/{merchant_id}/token-status")
    async def token_status(
        merchant_id: str,
        payment_processor_token: Annotated[str, Query(min_length=1, max_length=EXTERNAL_REFERENCE_CHARS)],
        scope: InternalScope = Depends(caller),
    ) -> Any:
        """The merchant's card `payment_processor_token` as its recoveries see it (`token_status_view`)."""
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        [budget] = (await deps.card_budgets.read(merchant_id, [payment_processor_token])).values()
        return token_status_view(budget, deps.clock.now()).model_dump(mode="json")

    @api.put("/{merchant_id}/token-status")
    async def update_token_status(
        merchant_id: str, body: UpdateTokenStatusRequest, scope: InternalScope = Depends(caller)
    ) -> Any:
        """The merchant's word on one of its cards (`CardBudget.status_updated`)."""
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        if body.is_hard_decline is None and body.scheduled_at is None:
            return _error(ApiError.MISSING_REQUIRED_FIELD, field_name="is_hard_decline")
        if body.error_code is not None and not body.is_hard_decline:
            return _error(ApiError.INVALID_REQUEST_DATA, message="error_code goes with is_hard_decline: true")
        refused = _schedule_refused(body, deps.clock.now())
        if refused is not None:
            return _error(ApiError.INVALID_REQUEST_DATA, message=refused)
        token = body.payment_processor_token
        update = await handlers.update_token_status(
            deps, merchant_id, token, body.is_hard_decline, body.error_code, body.scheduled_at
        )
        log.info(
            "card.token_status_updated",
            merchant_id=merchant_id,
            token=token,
            customer=body.connector_customer_id,
            updated=update.changed,
            hard_declined=update.hard_declined,
            scheduled_at=body.scheduled_at,
            planned_again=len(update.planned_again),
        )
        return UpdateTokenStatusResponse(
            updated=update.changed,
            message=update.message,
            hard_declined=update.hard_declined,
            recoveries_planned_again=len(update.planned_again),
        ).model_dump(mode="json")

    return api
