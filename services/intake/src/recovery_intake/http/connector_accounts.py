"""`/v2/connector-accounts`: payment processor and billing processor accounts of a profile.

Credentials (`connector_account_details`, `connector_webhook_details`) are stored sealed (a change seals them
afresh), travel sealed in `connector-account.updated`, and come back masked in responses, as Hyperswitch masks
them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.connector_accounts import (
    ConnectorAccountCreate,
    ConnectorAccountResponse,
    ConnectorAccountUpdate,
)
from recovery_contracts.api.errors import ApiError
from recovery_intake.domain.access import READ_CONFIGURATION, WRITE_CONFIGURATION
from recovery_intake.domain.sealed_fields import open_connector_body
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem


def account_response(doc: dict[str, Any], open_: Any) -> ConnectorAccountResponse:
    return ConnectorAccountResponse.from_create(
        ConnectorAccountCreate.model_validate(open_connector_body(doc["body"], open_)),
        id=doc["_id"],
        connector_label=doc.get("connector_label"),
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Connector accounts"], responses=ERROR_RESPONSES)

    @api.post("/v2/connector-accounts", response_model=ConnectorAccountResponse, response_model_exclude_none=True)
    async def create_connector_account(body: ConnectorAccountCreate, request: Request) -> ConnectorAccountResponse:
        caller = await ctx.auth.merchant(request, access=WRITE_CONFIGURATION)
        if caller.profile_id and caller.profile_id != body.profile_id:
            raise ApiProblem(
                ApiError.INVALID_REQUEST_DATA,
                message=f"profile_id {body.profile_id!r} differs from the x-profile-id header",
            )
        doc = await ctx.connector_accounts.create(caller.merchant_id, body)
        return account_response(doc, ctx.box.open)

    @api.get(
        "/v2/connector-accounts/{account_id}",
        response_model=ConnectorAccountResponse,
        response_model_exclude_none=True,
    )
    async def retrieve_connector_account(account_id: str, request: Request) -> ConnectorAccountResponse:
        caller = await ctx.auth.merchant(request, access=READ_CONFIGURATION)
        doc = await ctx.stored.connector_accounts.get(caller.merchant_id, account_id, profile_id=caller.profile_id)
        if doc is None:
            raise ApiProblem(ApiError.CONNECTOR_ACCOUNT_NOT_FOUND)
        return account_response(doc, ctx.box.open)

    @api.put(
        "/v2/connector-accounts/{account_id}",
        response_model=ConnectorAccountResponse,
        response_model_exclude_none=True,
    )
    async def update_connector_account(
        account_id: str, body: ConnectorAccountUpdate, request: Request
    ) -> ConnectorAccountResponse:
        """Hyperswitch's update: each field sent replaces the account's; `connector_type` must be the account's.
        The executor gets the change as it gets a creation (`connector-account.updated`, a newer version):
        `disabled: true` stops its charges through the account."""
        caller = await ctx.auth.merchant(request, access=WRITE_CONFIGURATION)
        doc = await ctx.connector_accounts.update(caller.merchant_id, account_id, body, profile_id=caller.profile_id)
        return account_response(doc, ctx.box.open)

    return api
