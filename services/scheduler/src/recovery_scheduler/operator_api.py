"""The process-tracker API (`/v2/process-trackers/revenue-recovery-workflow/...`) as internal endpoints.

Intake authenticates the merchant and forwards the call here (recovery_runtime.internal_api); every read is
scoped to that merchant, so another merchant's payment id answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.process_tracker import (
    BusinessStatus,
    ProcessTrackerStatus,
    RevenueRecoveryResumeRequest,
    RevenueRecoveryTask,
)
from recovery_contracts.timestamps import format_ms
from recovery_runtime.internal_api import InternalCaller
from recovery_scheduler.adapters.recoveries import RecoveryRepository
from recovery_scheduler.adapters.timers import PSYNC_PURPOSE, TimerRepository
from recovery_scheduler.domain import classify_decline
from recovery_scheduler.workflow import TERMINAL, RecoveryStatus

RUNNER = "PASSIVE_RECOVERY_WORKFLOW"

Resume = Callable[[str, str, RevenueRecoveryResumeRequest], Awaitable[str | None]]


def tracker_view(doc: dict[str, Any], psync: dict[str, Any] | None) -> dict[str, Any]:
    """Hyperswitch's `{id, name, schedule_time_for_payment, schedule_time_for_psync, status, business_status}`,
    then this system's extension: the plan, the shadow plan, tokens, attempts with their decline class, and the
    timeline of what happened or was planned and why."""
    status = RecoveryStatus(doc["status"])
    plan = doc.get("plan") or {}
    if psync is not None:
        task, business = RevenueRecoveryTask.PSYNC_WORKFLOW, BusinessStatus.COMPLETED_EXECUTE_TASK_TO_TRIGGER_PSYNC
    elif status in TERMINAL:
        task, business = RevenueRecoveryTask.EXECUTE_WORKFLOW, doc.get("business_status") or "COMPLETED_EXECUTE_TASK"
    elif plan.get("kind") == "attempt":
        task, business = RevenueRecoveryTask.EXECUTE_WORKFLOW, BusinessStatus.PENDING
    elif plan.get("kind") == "replan":
        task, business = RevenueRecoveryTask.CALCULATE_WORKFLOW, BusinessStatus.CALCULATE_WORKFLOW_SCHEDULED
    else:
        task, business = RevenueRecoveryTask.CALCULATE_WORKFLOW, BusinessStatus.PENDING
    tracker_status = (
        ProcessTrackerStatus.FINISH if status in TERMINAL and psync is None else ProcessTrackerStatus.PENDING
    )
    snapshot = doc["snapshot"]
    networks = {t["token"]: t.get("card_network") for t in snapshot.get("tokens", [])}
    hard = set(doc.get("hard_declined_tokens", []))
    view: dict[str, Any] = {
        "id": f"{RUNNER}_{task.value}_{doc['_id']}",
        "name": task.value,
        "schedule_time_for_payment": plan.get("due_at") if plan.get("kind") == "attempt" else None,
        "schedule_time_for_psync": psync["due_at"] if psync else None,
        "status": tracker_status.value,
        "business_status": str(business),
        # -- extension --
        "payment_id": doc["_id"],
        "algorithm": doc["algorithm"],
        "recovery_status": status.value,
        "plan": plan or None,
        "tokens": [
            {
                "token": t["token"],
                "card_network": t.get("card_network"),
                "last_four_digits": t.get("last_four_digits"),
                "hard_declined": t["token"] in hard,
            }
            for t in snapshot.get("tokens", [])
        ],
        "billing_retry_count": snapshot.get("billing_retry_count"),
        "attempts": [_attempt(a, networks.get(a["token"])) for a in doc.get("attempts", [])],
        "timeline": doc.get("history", []),
    }
    return _json(view)


def _attempt(attempt: dict[str, Any], card_network: str | None) -> dict[str, Any]:
    shown = {
        key: attempt.get(key)
        for key in (
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
    }
    if attempt.get("outcome") in ("declined", "error"):
        shown["decline_class"] = classify_decline(
            attempt.get("decline_code"),
            attempt.get("error_code"),
            attempt.get("advice_code"),
            attempt.get("network_advice_code"),
            card_network,
            attempt.get("network_decline_code"),
        ).value
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


def router(
    recoveries: RecoveryRepository, timers: TimerRepository, caller: InternalCaller, resume: Resume
) -> APIRouter:
    api = APIRouter(prefix="/internal/recoveries", include_in_schema=False)

    async def view_of(merchant_id: str, payment_id: str) -> dict[str, Any] | None:
        doc = await recoveries.of_merchant(merchant_id, payment_id)
        if doc is None:
            return None
        return tracker_view(doc, await timers.pending_for(payment_id, PSYNC_PURPOSE))

    @api.get("/{merchant_id}/{payment_id}")
    async def get_recovery(merchant_id: str, payment_id: str, caller_merchant: str = Depends(caller)) -> Any:
        view = await view_of(caller_merchant, payment_id) if caller_merchant == merchant_id else None
        return view if view is not None else _error(ApiError.PAYMENT_NOT_FOUND)

    @api.post("/{merchant_id}/{payment_id}/resume")
    async def resume_recovery(
        merchant_id: str,
        payment_id: str,
        body: RevenueRecoveryResumeRequest,
        caller_merchant: str = Depends(caller),
    ) -> Any:
        if caller_merchant != merchant_id or await recoveries.of_merchant(caller_merchant, payment_id) is None:
            return _error(ApiError.PAYMENT_NOT_FOUND)
        refused = await resume(caller_merchant, payment_id, body)
        if refused is not None:
            return _error(ApiError.PRECONDITION_FAILED, message=refused)
        return await view_of(caller_merchant, payment_id)

    return api
