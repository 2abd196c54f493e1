"""`POST /v2/recovery/data-backfill` (Hyperswitch's revenue-recovery data backfill): a CSV of the customers' saved
cards, multipart field `file`, applied to the merchant's open recoveries (docs/contracts.md, `DataBackfillRecord`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from recovery_contracts.api.data_backfill import DataBackfillResponse, SavedCardsResponse
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.fields import EXTERNAL_REFERENCE_CHARS
from recovery_intake.domain.access import READ_PAYMENTS, WRITE_PAYMENTS
from recovery_intake.domain.card_backfill import MAX_BYTES, BackfillRefused
from recovery_intake.handlers.card_backfill import CardDataBackfill
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem
from recovery_intake.http.uploads import file_upload_body, uploaded_file

PATH = "/v2/recovery/data-backfill"
CARDS = f"{PATH}/cards"
# The customer at the payment processor, as the upload's `customer_id_resp` names it (a query parameter: such ids
# may hold any character, a `/` too), and its bound.
CUSTOMER_CHARS = EXTERNAL_REFERENCE_CHARS
Customer = Annotated[
    str,
    Query(
        min_length=1,
        max_length=CUSTOMER_CHARS,
        description="the customer at the payment processor (customer_id_resp)",
    ),
]
# The body limit of this path (AbuseLimits): the file's and the multipart envelope's.
BODY_BYTES = MAX_BYTES + 64 * 1024
UPLOAD = file_upload_body("the CSV")


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Payments"], responses=ERROR_RESPONSES)
    backfill = CardDataBackfill(ctx.stored)

    @api.post(PATH, response_model=DataBackfillResponse, openapi_extra=UPLOAD)
    async def data_backfill(request: Request) -> DataBackfillResponse:
        """Card data of the merchant's customers' saved payment methods (expiry, network, funding, issuer), one
        row per token, in Hyperswitch's columns; each open recovery holding the token takes it. A merchant key
        with the `payments` scope, or the admin key with `x-merchant-id`. Rows that cannot be applied are
        answered with their line and reason; the others are applied."""
        # The caller first: a request without a valid key learns nothing, not even what the body lacks.
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS)
        content = await (await uploaded_file(request, BODY_BYTES)).read()
        try:
            return await backfill.backfill(caller.merchant_id, content)
        except BackfillRefused as refused:
            raise ApiProblem(ApiError.INVALID_REQUEST_DATA, message=f"file: {refused}") from refused

    @api.get(CARDS, response_model=SavedCardsResponse)
    async def kept_cards(request: Request, connector_customer_id: Customer) -> SavedCardsResponse:
        """Extension: what the merchant's uploads said of the customer's saved cards, kept for its recoveries still
        to come (90 days from each card's latest upload), at most 100 by token. A key with the `payments` or
        `read_only` scope, or the admin key with `x-merchant-id`."""
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS)
        return await backfill.kept_cards(caller.merchant_id, connector_customer_id)

    @api.delete(CARDS, response_model=SavedCardsResponse)
    async def forget_cards(request: Request, connector_customer_id: Customer) -> SavedCardsResponse:
        """Extension: the customer's kept cards forgotten (at most 100 a call: call again while `cards` is not
        empty), answered with those it forgot. Open recoveries keep what they took of them. A key with the
        `payments` scope, or the admin key with `x-merchant-id`."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS)
        return await backfill.forget_cards(caller.merchant_id, connector_customer_id)

    return api
