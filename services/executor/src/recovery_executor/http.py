"""The executor's internal endpoints: a payment's record back to the billing system and every try of it, and
starting an abandoned or blocked one again.

Read by `recovery timeline`, and the restart called by intake's process-tracker resume (`PSYNC_WORKFLOW`), with
the internal token, so that no one reads or writes `record_backs` but its owner; scoped to the merchant in
`x-internal-merchant-id`, so another merchant's payment answers 404, and on a profile-level call
(`x-internal-profile-id`) to the profile its record back names (one stored before 4 Dec names none: only a
merchant-level call finds it).

`?dispute_id=` reads, or restarts, the refund record of a dispute lost on the payment instead of the payment's own
record back (domain/dispute_refunds.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.process_tracker import RevenueRecoveryResumeRequest
from recovery_contracts.timestamps import format_ms
from recovery_executor import handlers
from recovery_executor.dependencies import Dependencies
from recovery_executor.domain.record_back import RecordBackHistory
from recovery_runtime.internal_api import InternalCaller, InternalScope


def record_back_view(history: RecordBackHistory) -> dict[str, Any]:
    """Where the record back stands, then each try: when, the HTTP status or the error, and where it stood after."""
    progress = history.progress
    return {
        "payment_id": progress.payment_id,
        **({"dispute_id": progress.dispute_id} if progress.dispute_id is not None else {}),
        "billing_connector": progress.billing_connector,
        "status": progress.status.value,
        "tries": progress.attempts,
        "updated_at": format_ms(progress.updated_at),
        "attempts": [
            {
                "attempt": tried.attempt,
                "at": format_ms(tried.at),
                "status_code": tried.status_code,
                "error": tried.error,
                "outcome": tried.outcome.value if tried.outcome is not None else None,
            }
            for tried in history.tries
        ],
    }


def router(deps: Dependencies, caller: InternalCaller) -> APIRouter:
    api = APIRouter(prefix="/internal/record-backs", include_in_schema=False)

    async def history_of(
        scope: InternalScope, merchant_id: str, payment_id: str, dispute_id: str | None
    ) -> RecordBackHistory | None:
        if scope.merchant_id != merchant_id:
            return None
        found = await deps.record_backs.history(merchant_id, payment_id, dispute_id)
        if found is None or scope.profile_id not in (None, found.progress.profile_id):
            return None
        return found

    @api.get("/{merchant_id}/{payment_id}")
    async def get_record_back(
        merchant_id: str, payment_id: str, dispute_id: str | None = None, scope: InternalScope = Depends(caller)
    ) -> Any:
        found = await history_of(scope, merchant_id, payment_id, dispute_id)
        return record_back_view(found) if found is not None else _error(ApiError.PAYMENT_NOT_FOUND)

    @api.post("/{merchant_id}/{payment_id}/restart")
    async def restart_record_back(
        merchant_id: str,
        payment_id: str,
        body: RevenueRecoveryResumeRequest,
        dispute_id: str | None = None,
        scope: InternalScope = Depends(caller),
    ) -> Any:
        found = await history_of(scope, merchant_id, payment_id, dispute_id)
        if found is None:
            # Not "no such payment": the payment may well exist, unrecovered (and another merchant's reads the same).
            missing = handlers.NO_RECORD_BACK if dispute_id is None else handlers.NO_REFUND_RECORD
            return _error(ApiError.PRECONDITION_FAILED, message=missing)
        restarted = await handlers.restart_record_back(deps, found, body)
        if isinstance(restarted, str):
            return _error(ApiError.PRECONDITION_FAILED, message=restarted)
        return record_back_view(restarted)

    return api


def _error(error: ApiError, **params: str) -> JSONResponse:
    return JSONResponse(error.response(**params).model_dump(mode="json", exclude_none=True), error.status_code)
