"""`/v2/payments/recovery`, `/v2/revenue-recovery/{merchant_reference_id}/cancel` and `/v2/payments/{id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from recovery_contracts.api.errors import ApiError, ErrorResponse
from recovery_contracts.api.fields import EXTERNAL_REFERENCE_CHARS
from recovery_contracts.api.recovery import RecoveryPaymentsCreate, RecoveryPaymentsResponse
from recovery_contracts.payments import PaymentObject
from recovery_intake.domain.access import READ_PAYMENTS, WRITE_PAYMENTS
from recovery_intake.domain.intent import Intent
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

# As `merchant_reference_id` in the request body (recovery_contracts.api.fields.ExternalReference).
Reference = Annotated[str, Path(min_length=1, max_length=EXTERNAL_REFERENCE_CHARS)]


def _answer(intent: Intent) -> RecoveryPaymentsResponse:
    return RecoveryPaymentsResponse(
        id=intent.payment_id, intent_status=intent.status, merchant_reference_id=intent.merchant_reference_id
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Payments"], responses=ERROR_RESPONSES)

    @api.post("/v2/payments/recovery", response_model=RecoveryPaymentsResponse, responses=DEFERRED_CANCEL_RESPONSE)
    async def recovery(body: RecoveryPaymentsCreate, request: Request) -> RecoveryPaymentsResponse:
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)
        profile = ctx.auth.profile(caller)
        intent = await ctx.recovery.accept(caller.merchant_id, profile, body)
        return _answer(intent)

    @api.post(
        "/v2/revenue-recovery/{merchant_reference_id}/cancel",
        response_model=RecoveryPaymentsResponse,
        responses=DEFERRED_CANCEL_RESPONSE,
    )
    async def cancel_recovery(merchant_reference_id: Reference, request: Request) -> RecoveryPaymentsResponse:
        """Cancel the recovery of the invoice `merchant_reference_id` on the `x-profile-id` profile, as a
        `cancel_invoice` request does, without the invoice: no charge follows a 200 that says `cancelled`. A paid
        or already cancelled invoice answers with its status; one the profile does not have, `HE_02` (404)."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)
        profile = ctx.auth.profile(caller)
        intent = await ctx.recovery.cancel(caller.merchant_id, profile["_id"], merchant_reference_id)
        return _answer(intent)

    # The object as the last outcome stored it (`PaymentObject`'s JSON), answered as stored: described, not
    # re-validated, so that an object a newer release stored during a rolling upgrade is still answered.
    @api.get(
        "/v2/payments/{payment_id}",
        response_model=None,
        responses={200: {"model": PaymentObject, "description": "the v2 payment object"}},
    )
    async def retrieve_payment(payment_id: str, request: Request) -> dict[str, Any]:
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS, admin_allowed=False)
        intent = await ctx.stored.intents.get(caller.merchant_id, payment_id, caller.profile_id)
        if intent is None:
            raise ApiProblem(ApiError.PAYMENT_NOT_FOUND)
        return intent.as_payment_object()

    return api
