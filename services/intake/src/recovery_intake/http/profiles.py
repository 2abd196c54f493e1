"""`/v2/profiles`: webhook settings, signing keys and the retry algorithm of a business profile."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.masking import mask_headers
from recovery_contracts.api.profiles import ProfileCreate, ProfileResponse, ProfileUpdate
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import new_profile_id
from recovery_contracts.messages import ProfileUpdated
from recovery_contracts.recovery import RetryAlgorithm
from recovery_intake.domain.api_keys import generate_hash_key
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ApiProblem
from recovery_runtime.unit_of_work import Transaction

_PROFILE_FIELDS = (
    "profile_name",
    "return_url",
    "enable_payment_response_hash",
    "payment_response_hash_key",
    "redirect_to_merchant_with_http_post",
    "webhook_details",
    "metadata",
    "session_expiry",
    "outgoing_webhook_custom_http_headers",
    "order_fulfillment_time",
    "revenue_recovery_retry_algorithm_type",
)


def new_whsec_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def profile_response(doc: dict[str, Any]) -> ProfileResponse:
    headers = doc.get("outgoing_webhook_custom_http_headers")
    return ProfileResponse(
        merchant_id=doc["merchant_id"],
        id=doc["_id"],
        **{
            k: doc.get(k)
            for k in _PROFILE_FIELDS
            if k != "outgoing_webhook_custom_http_headers" and doc.get(k) is not None
        },
        outgoing_webhook_custom_http_headers=mask_headers(headers) if headers else None,
        standard_webhooks_secret=(doc.get("standard_webhooks_secrets") or [None])[0],
    )


def profile_updated(doc: dict[str, Any]) -> Envelope[ProfileUpdated]:
    webhook = doc.get("webhook_details") or {}
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=doc["merchant_id"],
        profile_id=doc["_id"],
        payload=ProfileUpdated(
            profile_id=doc["_id"],
            merchant_id=doc["merchant_id"],
            version=doc["version"],
            webhook_url=webhook.get("webhook_url"),
            payment_response_hash_key=(
                doc.get("payment_response_hash_key") if doc.get("enable_payment_response_hash", True) else None
            ),
            standard_webhooks_secrets=tuple(doc.get("standard_webhooks_secrets") or ()),
            custom_headers=doc.get("outgoing_webhook_custom_http_headers") or {},
            retry_algorithm=RetryAlgorithm(doc.get("revenue_recovery_retry_algorithm_type", "monitoring")),
        ),
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Profiles"])

    @api.post("/v2/profiles", response_model=ProfileResponse, response_model_exclude_none=True)
    async def create_profile(body: ProfileCreate, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, admin_allowed=True)
        now = ctx.clock.now()
        doc: dict[str, Any] = {
            "_id": new_profile_id(),
            "merchant_id": caller.merchant_id,
            **body.model_dump(mode="json", exclude_none=True),
            "standard_webhooks_secrets": [new_whsec_secret()],
            "version": 1,
            "created_at": now,
            "modified_at": now,
        }
        doc.setdefault("payment_response_hash_key", generate_hash_key())

        async def create(tx: Transaction) -> None:
            await ctx.repository.profiles.insert_one(doc, session=tx.session)
            tx.emit(profile_updated(doc))

        await ctx.store.apply(create)
        return profile_response(doc)

    @api.get("/v2/profiles/{profile_id}", response_model=ProfileResponse, response_model_exclude_none=True)
    async def retrieve_profile(profile_id: str, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, admin_allowed=True)
        doc = await ctx.repository.profile(caller.merchant_id, profile_id)
        if doc is None:
            raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=profile_id)
        return profile_response(doc)

    @api.put("/v2/profiles/{profile_id}", response_model=ProfileResponse, response_model_exclude_none=True)
    async def update_profile(profile_id: str, body: ProfileUpdate, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, admin_allowed=True)
        changes = body.model_dump(mode="json", exclude_unset=True)

        async def update(tx: Transaction) -> dict[str, Any]:
            doc = await ctx.repository.profile(caller.merchant_id, profile_id, tx.session)
            if doc is None:
                raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=profile_id)
            expected = doc["version"]
            for key, value in changes.items():
                if value is None:
                    doc.pop(key, None)
                else:
                    doc[key] = value
            if not doc.get("payment_response_hash_key"):
                doc["payment_response_hash_key"] = generate_hash_key()
            doc["version"] = expected + 1
            doc["modified_at"] = ctx.clock.now()
            if not await ctx.repository.save_profile(doc, expected, tx.session):
                raise ApiProblem(ApiError.RESOURCE_BUSY)
            tx.emit(profile_updated(doc))
            return doc

        return profile_response(await ctx.store.apply(update))

    return api
