"""`POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept` and `.../evidence`: the merchant's answer to a
dispute on a recovered payment, sent to the payment connector (handlers/dispute_answers.py); `.../files`: a file for
that evidence, uploaded to the payment connector."""

from __future__ import annotations

from fastapi import APIRouter, Request

from recovery_contracts.api.disputes import (
    MAX_EVIDENCE_FILE_BYTES,
    DisputeAnswerResponse,
    DisputeEvidenceRequest,
    DisputeFileResponse,
)
from recovery_contracts.api.errors import ErrorResponse
from recovery_intake.domain.access import WRITE_PAYMENTS
from recovery_intake.handlers.dispute_answers import EvidenceFile
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES
from recovery_intake.http.uploads import file_upload_body, uploaded_file

FILES = "/v2/payments/{payment_id}/disputes/{dispute_id}/files"
# The body limit of FILES (AbuseLimits): the file's and the multipart envelope's.
FILE_BODY_BYTES = MAX_EVIDENCE_FILE_BYTES + 64 * 1024
FILE_UPLOAD = file_upload_body("a PDF, JPEG or PNG of at most 5,000,000 bytes, its part's Content-Type saying which")
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

    @api.post(FILES, response_model=DisputeFileResponse, openapi_extra=FILE_UPLOAD)
    async def upload_dispute_file(payment_id: str, dispute_id: str, request: Request) -> DisputeFileResponse:
        """Upload a file (multipart field `file`) as evidence for the open dispute `dispute_id`, to name in the
        evidence (`receipt`, `customer_communication`, ...) by the `file_id` answered; uploaded to the payment
        connector at once (Stripe: purpose `dispute_evidence`), kept nowhere here. `IR_06` for a file Stripe would
        not take (PDF, JPEG or PNG, at most 5,000,000 bytes), `IR_16` when the dispute takes no more evidence."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS, admin_allowed=False)

        async def read_file() -> EvidenceFile:
            # Read once the dispute is found: a caller learns nothing of a payment not its own from the body.
            upload = await uploaded_file(request, FILE_BODY_BYTES)
            return upload.filename or "evidence", await upload.read(), upload.content_type

        return await ctx.disputes.upload_file(caller.merchant_id, caller.profile_id, payment_id, dispute_id, read_file)

    return api
