"""`/v2/connector-accounts`: payment processor and billing processor accounts of a profile.

Credentials (`connector_account_details`, `connector_webhook_details`) are stored sealed, travel sealed in
`connector-account.updated`, and come back masked in responses, as Hyperswitch masks them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.connector_accounts import (
    ConnectorAccountCreate,
    ConnectorAccountResponse,
    ConnectorType,
)
from recovery_contracts.api.errors import ApiError
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import new_connector_account_id
from recovery_contracts.messages import ConnectorAccountUpdated
from recovery_intake.domain.outbound_urls import outbound_url_problem
from recovery_intake.domain.sealed_fields import open_connector_body, seal_connector_body, sealed_connector_api_key
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem
from recovery_runtime.unit_of_work import Transaction


def account_updated(doc: dict[str, Any]) -> Envelope[ConnectorAccountUpdated]:
    """`doc` as stored: `api_key` goes out sealed, as it is stored."""
    body = doc["body"]
    return Envelope[ConnectorAccountUpdated](
        type=MessageType.CONNECTOR_ACCOUNT_UPDATED,
        merchant_id=doc["merchant_id"],
        profile_id=doc["profile_id"],
        payload=ConnectorAccountUpdated(
            connector_account_id=doc["_id"],
            merchant_id=doc["merchant_id"],
            profile_id=doc["profile_id"],
            version=doc["version"],
            connector_type=doc["connector_type"],
            connector_name=doc["connector_name"],
            api_key=sealed_connector_api_key(body),
            disabled=bool(doc.get("disabled")),
            revenue_recovery=(body.get("feature_metadata") or {}).get("revenue_recovery"),
        ),
    )


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
        caller = await ctx.auth.merchant(request, admin_allowed=True)
        header_profile = request.headers.get("x-profile-id")
        if header_profile and header_profile != body.profile_id:
            raise ApiProblem(
                ApiError.INVALID_REQUEST_DATA,
                message=f"profile_id {body.profile_id!r} differs from the x-profile-id header",
            )
        profile = await ctx.repository.profile(caller.merchant_id, body.profile_id)
        if profile is None:
            raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=body.profile_id)
        recovery = body.feature_metadata.revenue_recovery if body.feature_metadata else None
        if recovery is not None and recovery.record_back_url is not None:
            problem = outbound_url_problem(recovery.record_back_url, ctx.settings.http_allowed_hosts)
            if problem:
                raise ApiProblem(
                    ApiError.INVALID_REQUEST_DATA,
                    message=f"feature_metadata.revenue_recovery.record_back_url {problem}",
                )
        if body.connector_type is ConnectorType.BILLING_PROCESSOR and recovery is not None:
            for referenced in recovery.billing_account_reference:
                account = await ctx.repository.connector_account(caller.merchant_id, referenced)
                if (
                    account is None
                    or account["profile_id"] != body.profile_id
                    or (account["connector_type"] != ConnectorType.PAYMENT_PROCESSOR.value)
                ):
                    raise ApiProblem(
                        ApiError.INVALID_REQUEST_DATA,
                        message=(
                            "feature_metadata.revenue_recovery.billing_account_reference names "
                            f"{referenced!r}, which is not a payment processor account of profile {body.profile_id}"
                        ),
                    )
        now = ctx.clock.now()
        label = body.connector_label or f"{body.connector_name.value}_{body.profile_id}"
        doc = {
            "_id": new_connector_account_id(),
            "merchant_id": caller.merchant_id,
            "profile_id": body.profile_id,
            "connector_type": body.connector_type.value,
            "connector_name": body.connector_name.value,
            "connector_label": label,
            "disabled": bool(body.disabled),
            "feature_metadata": body.feature_metadata.model_dump(mode="json") if body.feature_metadata else None,
            "body": seal_connector_body(body.model_dump(mode="json", exclude_none=True), ctx.box.seal),
            "version": 1,
            "created_at": now,
        }

        async def create(tx: Transaction) -> None:
            await ctx.repository.connector_accounts.insert_one(doc, session=tx.session)
            tx.emit(account_updated(doc))

        await ctx.store.apply(create)
        return account_response(doc, ctx.box.open)

    @api.get(
        "/v2/connector-accounts/{account_id}",
        response_model=ConnectorAccountResponse,
        response_model_exclude_none=True,
    )
    async def retrieve_connector_account(account_id: str, request: Request) -> ConnectorAccountResponse:
        caller = await ctx.auth.merchant(request, admin_allowed=True)
        doc = await ctx.repository.connector_account(caller.merchant_id, account_id, profile_id=caller.profile_id)
        if doc is None:
            raise ApiProblem(ApiError.CONNECTOR_ACCOUNT_NOT_FOUND)
        return account_response(doc, ctx.box.open)

    return api
