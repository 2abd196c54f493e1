"""`/v2/api-keys`: merchant keys, shown once at creation and stored only as a keyed hash, with their scopes
(an extension, fixed at creation); revoking one revokes the keys it minted (`handlers.api_keys`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from recovery_contracts.api.api_keys import MAX_PAGE_SIZE as MAX_PAGE
from recovery_contracts.api.api_keys import (
    ApiKeyCreate,
    ApiKeyCreateResponse,
    ApiKeyUpdate,
    ListApiKeyConstraints,
    RetrieveApiKeyResponse,
    RevokeApiKeyResponse,
)
from recovery_contracts.api.errors import ApiError
from recovery_intake.domain.access import READ_CONFIGURATION, WRITE_CONFIGURATION, Minter, scopes_of
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem

# `key_…` as issued: `/v2/api-keys/list` is the list, never a key named "list".
KeyId = Annotated[str, Path(pattern=r"^key_[A-Za-z0-9]{1,60}$")]


def _retrieve(doc: dict[str, Any]) -> RetrieveApiKeyResponse:
    return RetrieveApiKeyResponse(
        key_id=doc["_id"],
        merchant_id=doc["merchant_id"],
        name=doc["name"],
        description=doc.get("description"),
        prefix=doc["prefix"],
        created=doc["created"],
        expiration=doc["expiration"],
        scopes=sorted(scopes_of(doc)),
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["API keys"], responses=ERROR_RESPONSES)

    @api.post("/v2/api-keys", response_model=ApiKeyCreateResponse, response_model_exclude_none=True)
    async def create_api_key(body: ApiKeyCreate, request: Request) -> ApiKeyCreateResponse:
        caller = await ctx.auth.merchant(request, access=WRITE_CONFIGURATION)
        minter = Minter(caller.key_id, caller.scopes, caller.expires_at)
        doc, issued = await ctx.api_keys.issue(caller.merchant_id, body, minter)
        return ApiKeyCreateResponse(
            key_id=issued.key_id,
            merchant_id=caller.merchant_id,
            name=body.name,
            description=body.description,
            api_key=issued.plaintext,
            created=doc["created"],
            expiration=body.expiration,
            scopes=sorted(scopes_of(doc)),
        )

    @api.get("/v2/api-keys/list", response_model=list[RetrieveApiKeyResponse], response_model_exclude_none=True)
    async def list_api_keys(
        request: Request, constraints: Annotated[ListApiKeyConstraints, Query()]
    ) -> list[RetrieveApiKeyResponse]:
        caller = await ctx.auth.merchant(request, access=READ_CONFIGURATION)
        limit, skip = constraints.limit or MAX_PAGE, constraints.skip or 0
        return [_retrieve(d) for d in await ctx.stored.api_keys.active(caller.merchant_id, limit, skip)]

    @api.get("/v2/api-keys/{key_id}", response_model=RetrieveApiKeyResponse, response_model_exclude_none=True)
    async def retrieve_api_key(key_id: KeyId, request: Request) -> RetrieveApiKeyResponse:
        caller = await ctx.auth.merchant(request, access=READ_CONFIGURATION)
        doc = await ctx.stored.api_keys.get(caller.merchant_id, key_id)
        if doc is None or doc.get("revoked"):
            raise ApiProblem(ApiError.API_KEY_NOT_FOUND)
        return _retrieve(doc)

    @api.put("/v2/api-keys/{key_id}", response_model=RetrieveApiKeyResponse, response_model_exclude_none=True)
    async def update_api_key(key_id: KeyId, body: ApiKeyUpdate, request: Request) -> RetrieveApiKeyResponse:
        """Hyperswitch's update: `name`, `description`, `expiration`. Scopes cannot be changed (mint another key);
        a new expiration is one the calling key could give a key it mints, and only on a key with no scope the
        calling key lacks."""
        caller = await ctx.auth.merchant(request, access=WRITE_CONFIGURATION)
        changer = Minter(caller.key_id, caller.scopes, caller.expires_at)
        return _retrieve(await ctx.api_keys.update(caller.merchant_id, key_id, body, changer))

    @api.delete("/v2/api-keys/{key_id}", response_model=RevokeApiKeyResponse)
    async def revoke_api_key(key_id: KeyId, request: Request) -> RevokeApiKeyResponse:
        caller = await ctx.auth.merchant(request, access=WRITE_CONFIGURATION)
        await ctx.api_keys.revoke(caller.merchant_id, key_id)
        return RevokeApiKeyResponse(merchant_id=caller.merchant_id, key_id=key_id, revoked=True)

    return api
