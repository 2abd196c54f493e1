"""`/v2/payments/recovery` and `/v2/payments/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.errors import ApiError, ErrorResponse
from recovery_contracts.api.recovery import RecoveryPaymentsCreate, RecoveryPaymentsResponse
from recovery_intake.domain.access import READ_PAYMENTS, WRITE_PAYMENTS
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem

# A cancel that meets an attempt being charged (or just succeeded) is refused for now: docs/contracts.md, IR_14.
DEFERRED_CANCEL_RESPONSE: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorResponse,
        "description": "`IR_14`: a cancel while an attempt of the payment is being charged or has just succeeded; "
        "nothing is stored. Send it again once the attempt settled (seconds).",
    }
}


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Payments"], responses=ERROR_RESPONSES)

    @api.post("/v2/payments/recovery", response_model=RecoveryPaymentsResponse, responses=DEFERRED_CANCEL_RESPONSE)
    async def recovery(body: RecoveryPaymentsCreate, request: Request) -> RecoveryPaymentsResponse:
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)
        profile = ctx.auth.profile(caller)
        intent = await ctx.recovery.accept(caller.merchant_id, profile, body)
        return RecoveryPaymentsResponse(
            id=intent.payment_id, intent_status=intent.status, merchant_reference_id=intent.merchant_reference_id
        )

    @api.get("/v2/payments/{payment_id}")
    async def retrieve_payment(payment_id: str, request: Request) -> dict[str, Any]:
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS, admin_allowed=False)
        intent = await ctx.stored.intents.get(caller.merchant_id, payment_id, caller.profile_id)
        if intent is None:
            raise ApiProblem(ApiError.PAYMENT_NOT_FOUND)
        return intent.as_payment_object()

    return api
