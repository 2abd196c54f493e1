"""The Payment page's answer to an open dispute on a recovered payment: accepting it, or submitting evidence to the
bank, its text and its files (each file uploaded for the dispute first), through the API's use case
(handlers/dispute_answers.py), for a merchant key with the payments scope.

Thin, as every route here: read the session, ask the use case, redirect to the Payment page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from recovery_contracts.api.disputes import DisputeEvidenceRequest
from recovery_intake.console.pages import PREFIX, Console, Refused, valid_id
from recovery_intake.domain.payment_disputes import evidence_file_refusal
from recovery_intake.domain.rejection import Rejection
from recovery_intake.http import disputes

log = structlog.get_logger(__name__)

# The evidence the Payment page's form asks for (the API takes every field of DisputeEvidenceRequest): text, and
# files, each uploaded for the dispute first; the form's path has a body bound for them (app.py).
EVIDENCE_FIELDS = ("product_description", "customer_name", "customer_email_address", "uncategorized_text")
EVIDENCE_FILES = ("receipt", "customer_communication", "uncategorized_file")
CONSOLE_EVIDENCE = f"{PREFIX}/payments/{{payment_id}}/disputes/{{dispute_id}}/evidence"
CONSOLE_EVIDENCE_BYTES = len(EVIDENCE_FILES) * disputes.FILE_BODY_BYTES


def _evidence_file(name: str, file: UploadFile) -> Callable[[], Awaitable[tuple[str, bytes, str | None]]]:
    """How the Payment page's file `name` is read for the dispute's evidence (its name, bytes and type)."""

    async def read() -> tuple[str, bytes, str | None]:
        return file.filename or name, await file.read(), file.content_type

    return read


def router(console: Console) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)

    @api.post("/payments/{payment_id}/disputes/{dispute_id}/{answer}")
    @console.guarded
    async def answer_dispute(request: Request, payment_id: str, dispute_id: str, answer: str) -> Response:
        """The API's answer to an open dispute from the Payment page: `accept` it, or submit `evidence` to the bank
        (the form's text fields and files, the API's field names; each file uploaded for the dispute first), for a
        merchant key with the payments scope."""
        visitor, form = await console.checked_post(request, max_part_size=disputes.FILE_BODY_BYTES)
        merchant_id = console.merchant_of(visitor)
        if visitor.session.is_admin or not visitor.can_write:
            raise Refused(403, "Answering a dispute needs a merchant API key with the payments scope.")
        if answer not in ("accept", "evidence") or not (valid_id(payment_id) and valid_id(dispute_id)):
            raise Refused(404, "No such dispute.")
        try:
            if answer == "accept":
                await console.ctx.disputes.accept(merchant_id, None, payment_id, dispute_id)
            else:
                given = {n: v.strip() for n, v in form.items() if n in EVIDENCE_FIELDS and isinstance(v, str)}
                given = {n: v for n, v in given.items() if v}
                files = {n: f for n, f in form.items() if n in EVIDENCE_FILES and isinstance(f, UploadFile) and f.size}
                if not files or given:
                    DisputeEvidenceRequest(**given)  # the text's own bounds, before any file is uploaded
                for name, file in files.items():  # every file's type and size, before the first is uploaded
                    if (why := evidence_file_refusal(file.content_type, file.size or 0)) is not None:
                        raise Refused(400, f"Not submitted: {name}: {why}.")
                for name, file in files.items():
                    read = _evidence_file(name, file)
                    uploaded = await console.ctx.disputes.upload_file(merchant_id, None, payment_id, dispute_id, read)
                    given[name] = uploaded.file_id
                evidence = DisputeEvidenceRequest(**given)
                await console.ctx.disputes.submit_evidence(merchant_id, None, payment_id, dispute_id, evidence)
        except ValidationError as invalid:
            raise Refused(400, f"Not submitted: {_first_error(invalid)}.") from invalid
        except Rejection as refused:
            status = refused.error.status_code if refused.error.status_code in (404, 503) else 409
            raise Refused(status, f"Not answered: {refused.describe()}.") from refused
        log.info("console.dispute_answered", merchant_id=merchant_id, payment_id=payment_id, answer=answer)
        return RedirectResponse(f"{PREFIX}/payments/{payment_id}?done={answer}", status_code=303)

    return api


def _first_error(invalid: ValidationError) -> str:
    """The first of the model's complaints, in words: which field, and what is wrong with it."""
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])
