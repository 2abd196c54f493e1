"""`/v2/merchant-accounts`: created and read with the admin key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.merchants import MerchantAccountCreate, MerchantAccountResponse
from recovery_intake.domain.access import READ_CONFIGURATION
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem


def _response(doc: dict[str, Any]) -> MerchantAccountResponse:
    return MerchantAccountResponse(
        id=doc["_id"],
        merchant_name=doc["merchant_name"],
        merchant_details=doc.get("merchant_details"),
        metadata=doc.get("metadata"),
        product_type=doc.get("product_type"),
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Merchant accounts"], responses=ERROR_RESPONSES)

    @api.post("/v2/merchant-accounts", response_model=MerchantAccountResponse, response_model_exclude_none=True)
    async def create_merchant_account(body: MerchantAccountCreate, request: Request) -> MerchantAccountResponse:
        await ctx.auth.require_admin(request)
        return _response(await ctx.merchants.create(body))

    @api.get(
        "/v2/merchant-accounts/{merchant_id}",
        response_model=MerchantAccountResponse,
        response_model_exclude_none=True,
    )
    async def retrieve_merchant_account(merchant_id: str, request: Request) -> MerchantAccountResponse:
        caller = await ctx.auth.merchant(request, access=READ_CONFIGURATION)
        doc = await ctx.stored.merchants.get(merchant_id)
        if doc is None or caller.merchant_id != merchant_id:
            raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        return _response(doc)

    return api
