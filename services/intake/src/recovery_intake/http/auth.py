"""API-key authentication: the admin key from configuration, merchant keys by keyed hash.

Every merchant route asks `Authenticator.merchant`: the key's merchant must equal `x-merchant-id` (when sent),
and an `x-profile-id` sent must name a profile of that merchant (404 otherwise, as for one that does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request

from recovery_contracts.api.errors import ApiError
from recovery_intake.domain.api_keys import hash_api_key, same_secret
from recovery_intake.http.errors import ApiProblem
from recovery_intake.ports import IntakeAdapters

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Caller:
    merchant_id: str
    is_admin: bool
    key_id: str | None = None
    # The profile named by `x-profile-id`, checked to be the merchant's; None when the header is absent.
    profile: dict[str, Any] | None = None

    @property
    def profile_id(self) -> str | None:
        return self.profile["_id"] if self.profile else None


def presented_key(request: Request) -> str | None:
    key = request.headers.get("api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    # Hyperswitch also accepts `Authorization: api-key=<key>`.
    if authorization.lower().startswith("api-key="):
        return authorization.split("=", 1)[1].strip()
    return None


class Authenticator:
    def __init__(self, adapters: IntakeAdapters, admin_key: str, hash_secret: str) -> None:
        self._merchants = adapters.merchants
        self._api_keys = adapters.api_keys
        self._profiles = adapters.profiles
        self._clock = adapters.clock
        self._admin_key = admin_key
        self._hash_secret = hash_secret

    def is_admin(self, request: Request) -> bool:
        key = presented_key(request)
        return key is not None and same_secret(key, self._admin_key)

    def require_admin(self, request: Request) -> None:
        if presented_key(request) is None:
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="no API key: send it in the `api-key` header")
        if not self.is_admin(request):
            log.info("auth.rejected", reason="not the admin key", path=request.url.path)
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="this endpoint needs the admin API key")

    async def merchant(self, request: Request, *, admin_allowed: bool) -> Caller:
        """The merchant the caller acts for: a merchant key's own, or `x-merchant-id` with the admin key."""
        key = presented_key(request)
        header_merchant = request.headers.get("x-merchant-id")
        if key is None:
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="no API key: send it in the `api-key` header")
        if same_secret(key, self._admin_key):
            if not admin_allowed:
                raise ApiProblem(ApiError.UNAUTHORIZED, reason="this endpoint needs a merchant API key")
            if not header_merchant:
                raise ApiProblem(ApiError.MISSING_REQUIRED_FIELD, field_name="x-merchant-id (header)")
            if await self._merchants.get(header_merchant) is None:
                raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
            return await self._with_profile(request, Caller(merchant_id=header_merchant, is_admin=True))
        record = await self._api_keys.by_digest(hash_api_key(key, self._hash_secret))
        if record is None or record.get("revoked"):
            log.info("auth.rejected", reason="unknown or revoked key", path=request.url.path)
            raise ApiProblem(ApiError.UNAUTHORIZED)
        expires = record.get("expires_at")
        if expires is not None and expires <= self._clock.now():
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="the API key has expired")
        if header_merchant and header_merchant != record["merchant_id"]:
            log.info("auth.rejected", reason="merchant mismatch", key_id=record["_id"], path=request.url.path)
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="x-merchant-id does not match the API key's merchant")
        caller = Caller(merchant_id=record["merchant_id"], is_admin=False, key_id=record["_id"])
        return await self._with_profile(request, caller)

    async def _with_profile(self, request: Request, caller: Caller) -> Caller:
        profile_id = request.headers.get("x-profile-id")
        if not profile_id:
            return caller
        profile = await self._profiles.get(caller.merchant_id, profile_id)
        if profile is None:
            raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=profile_id[:64])
        return Caller(caller.merchant_id, caller.is_admin, caller.key_id, profile)

    def profile(self, caller: Caller) -> dict[str, Any]:
        """The `x-profile-id` profile, for routes that need one."""
        if caller.profile is None:
            raise ApiProblem(ApiError.MISSING_REQUIRED_FIELD, field_name="x-profile-id (header)")
        return caller.profile
