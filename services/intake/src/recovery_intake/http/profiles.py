"""`/v2/profiles`: webhook settings, signing keys and the retry algorithm of a business profile.

Stored with the hash key, the Standard Webhooks secrets, the webhook password and the custom header values sealed;
`profile.updated` carries them sealed. Responses show the hash key and the current Standard Webhooks secret in full
(the merchant verifies with them, as in Hyperswitch) and mask custom header values and the webhook password.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.masking import mask_headers, mask_secret
from recovery_contracts.api.profiles import (
    ProfileCreate,
    ProfileResponse,
    ProfileUpdate,
    WebhookSecretRotate,
    WebhookSecretRotation,
)
from recovery_contracts.timestamps import format_ms
from recovery_intake.domain.access import SECRETS
from recovery_intake.domain.sealed_fields import open_profile_secrets
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem

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
_MASKED = ("outgoing_webhook_custom_http_headers", "webhook_details")


def profile_response(stored: dict[str, Any], open_: Any) -> ProfileResponse:
    doc = open_profile_secrets(stored, open_)
    headers = doc.get("outgoing_webhook_custom_http_headers")
    details = doc.get("webhook_details")
    if details and details.get("webhook_password"):
        details = {**details, "webhook_password": mask_secret(details["webhook_password"])}
    return ProfileResponse(
        merchant_id=doc["merchant_id"],
        id=doc["_id"],
        **{k: doc.get(k) for k in _PROFILE_FIELDS if k not in _MASKED and doc.get(k) is not None},
        webhook_details=details,
        outgoing_webhook_custom_http_headers=mask_headers(headers) if headers else None,
        standard_webhooks_secret=(doc.get("standard_webhooks_secrets") or [None])[0],
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Profiles"], responses=ERROR_RESPONSES)

    @api.post("/v2/profiles", response_model=ProfileResponse, response_model_exclude_none=True)
    async def create_profile(body: ProfileCreate, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, access=SECRETS)
        return profile_response(await ctx.profiles.create(caller.merchant_id, body), ctx.box.open)

    @api.get("/v2/profiles/{profile_id}", response_model=ProfileResponse, response_model_exclude_none=True)
    async def retrieve_profile(profile_id: str, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, access=SECRETS)
        doc = await ctx.stored.profiles.get(caller.merchant_id, profile_id)
        if doc is None:
            raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=profile_id)
        return profile_response(doc, ctx.box.open)

    @api.put("/v2/profiles/{profile_id}", response_model=ProfileResponse, response_model_exclude_none=True)
    async def update_profile(profile_id: str, body: ProfileUpdate, request: Request) -> ProfileResponse:
        caller = await ctx.auth.merchant(request, access=SECRETS)
        return profile_response(await ctx.profiles.update(caller.merchant_id, profile_id, body), ctx.box.open)

    @api.post(
        "/v2/profiles/{profile_id}/webhook-secret/rotate",
        response_model=WebhookSecretRotation,
        response_model_exclude_none=True,
    )
    async def rotate_webhook_secret(
        profile_id: str, request: Request, body: WebhookSecretRotate | None = None
    ) -> WebhookSecretRotation:
        caller = await ctx.auth.merchant(request, access=SECRETS)
        overlap = None if body is None or body.overlap_seconds is None else timedelta(seconds=body.overlap_seconds)
        doc, secret = await ctx.secret_rotation.rotate(caller.merchant_id, profile_id, overlap)
        retire_at = doc.get("standard_webhooks_retire_at")
        return WebhookSecretRotation(
            profile_id=doc["_id"],
            standard_webhooks_secret=secret,
            active_secrets=len(doc["standard_webhooks_secrets"]),
            previous_secrets_expire_at=format_ms(retire_at) if retire_at else None,
        )

    return api
