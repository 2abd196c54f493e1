"""The executor's internal endpoint: a payment's record back to the billing system and every try of it.

Read by `recovery timeline` (and any caller holding the internal token), so that no one reads `record_backs`
but its owner; scoped to the merchant in `x-internal-merchant-id`, so another merchant's payment answers 404.
Record backs keep no profile: a profile-level call (`x-internal-profile-id`, which nobody sends here today) finds
none rather than another profile's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from recovery_contracts.api.errors import ApiError
from recovery_contracts.timestamps import format_ms
from recovery_executor.dependencies import RecordBackRepository
from recovery_executor.domain.record_back import RecordBackHistory
from recovery_runtime.internal_api import InternalCaller, InternalScope


def record_back_view(history: RecordBackHistory) -> dict[str, Any]:
    """Where the record back stands, then each try: when, the HTTP status or the error, and where it stood after."""
    progress = history.progress
    return {
        "payment_id": progress.payment_id,
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


def router(record_backs: RecordBackRepository, caller: InternalCaller) -> APIRouter:
    api = APIRouter(prefix="/internal/record-backs", include_in_schema=False)

    @api.get("/{merchant_id}/{payment_id}")
    async def get_record_back(merchant_id: str, payment_id: str, scope: InternalScope = Depends(caller)) -> Any:
        merchant_level = scope.merchant_id == merchant_id and scope.profile_id is None
        found = await record_backs.history(merchant_id, payment_id) if merchant_level else None
        if found is None:
            error = ApiError.PAYMENT_NOT_FOUND
            return JSONResponse(error.response().model_dump(mode="json", exclude_none=True), error.status_code)
        return record_back_view(found)

    return api
