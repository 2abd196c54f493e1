"""`POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept` and `.../evidence`: the merchant's answer to a
dispute on a recovered payment, sent to the payment connector (handlers/dispute_answers.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from recovery_contracts.api.disputes import DisputeAnswerResponse, DisputeEvidenceRequest
from recovery_contracts.api.errors import ErrorResponse
from recovery_intake.domain.access import WRITE_PAYMENTS
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES

_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorResponse, "description": "`CE_01`: the payment connector did not answer; send it again"},
}


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Disputes"], responses=_RESPONSES)

    @api.post("/v2/payments/{payment_id}/disputes/{dispute_id}/accept", response_model=DisputeAnswerResponse)
    async def accept_dispute(payment_id: str, dispute_id: str, request: Request) -> DisputeAnswerResponse:
        """Accept the open dispute `dispute_id` of the recovered payment at the payment connector: the money stays
        with the customer (an inquiry is closed). `IR_16` when it has ended, or the connector refuses (its words)."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)
        return await ctx.disputes.accept(caller.merchant_id, caller.profile_id, payment_id, dispute_id)

    @api.post("/v2/payments/{payment_id}/disputes/{dispute_id}/evidence", response_model=DisputeAnswerResponse)
    async def submit_dispute_evidence(
        payment_id: str, dispute_id: str, body: DisputeEvidenceRequest, request: Request
    ) -> DisputeAnswerResponse:
        """Challenge the open dispute `dispute_id` with this evidence, submitted to the bank at once: the dispute is
        under review. `IR_16` when it was challenged already, has ended, or the connector refuses (its words)."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)
        return await ctx.disputes.submit_evidence(caller.merchant_id, caller.profile_id, payment_id, dispute_id, body)

    return api
