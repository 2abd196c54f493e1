"""API-key authentication: the admin key from configuration, merchant keys by keyed hash, scopes per route.

Every merchant route asks `Authenticator.merchant` with the access it needs (`domain.access`): the key's merchant
must equal `x-merchant-id` (when sent), its scopes must permit the access (403 otherwise), and an `x-profile-id`
sent must name a profile of that merchant (404 otherwise, as for one that does not exist). The credentials are
read once per request (`read_credentials`). A client address with too many failed authentications is
refused (429) before any key it presents is checked (`limits.AuthFailures`).

The credential headers, read once for the rate limit and the authentication alike: `api-key` (or Hyperswitch's
`Authorization: api-key=<key>`), `x-merchant-id` and `x-profile-id`. A request that sends one of them twice, or
the key in both forms, is refused (400): which copy counts would otherwise depend on who reads it, and a second
random `api-key` must not buy a fresh rate-limit bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import Request
from starlette.types import Scope

from recovery_contracts.api.api_keys import ApiKeyScope
from recovery_contracts.api.audit import AuditActorKind
from recovery_contracts.api.errors import ApiError
from recovery_intake.dependencies import IntakeAdapters
from recovery_intake.domain.access import ALL_SCOPES, Access, check_access, scopes_of
from recovery_intake.domain.api_keys import hash_api_key, same_secret
from recovery_intake.domain.audit import AuditActor
from recovery_intake.http.errors import ApiProblem

if TYPE_CHECKING:
    from recovery_intake.http.limits import AuthFailures

API_KEY = "api-key"
AUTHORIZATION = "authorization"
MERCHANT = "x-merchant-id"
PROFILE = "x-profile-id"
_HEADERS = (API_KEY, AUTHORIZATION, MERCHANT, PROFILE)
_AUTHORIZATION_KEY = "api-key="
_SCOPE_KEY = "recovery_intake.credentials"


@dataclass(frozen=True)
class Credentials:
    # Stripped; None when absent or empty.
    api_key: str | None
    merchant_id: str | None
    profile_id: str | None
    # The client's address (the TCP peer, or the forwarded client behind a trusted proxy).
    address: str


def _value(raw: bytes) -> str | None:
    return raw.decode("latin-1").strip() or None


def read_credentials(scope: Scope) -> Credentials:
    """The request's credentials, parsed at most once per request (kept in the ASGI scope); ApiProblem (400)
    for a credential header sent twice."""
    kept = scope.get(_SCOPE_KEY)
    if isinstance(kept, Credentials):
        return kept
    sent: dict[str, bytes] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if name not in _HEADERS:
            continue
        if name in sent:
            raise ApiProblem(
                ApiError.INVALID_DATA_VALUE,
                reason=f"the `{name}` header was sent more than once: send each credential header once",
                field_name=f"{name} (header)",
            )
        sent[name] = raw_value
    api_key = _value(sent.get(API_KEY, b""))
    authorization = _value(sent.get(AUTHORIZATION, b""))
    # Hyperswitch also accepts `Authorization: api-key=<key>`; other schemes are not ours and are ignored.
    if authorization and authorization.lower().startswith(_AUTHORIZATION_KEY):
        if api_key is not None:
            raise ApiProblem(
                ApiError.INVALID_DATA_VALUE,
                reason="the API key was sent both in `api-key` and in `Authorization: api-key=`: send it once",
                field_name=f"{API_KEY} (header)",
            )
        api_key = authorization[len(_AUTHORIZATION_KEY) :].strip() or None
    client = scope.get("client") or ("unknown", 0)
    credentials = Credentials(
        api_key=api_key,
        merchant_id=_value(sent.get(MERCHANT, b"")),
        profile_id=_value(sent.get(PROFILE, b"")),
        address=str(client[0]),
    )
    scope[_SCOPE_KEY] = credentials
    return credentials


def credentials_of(request: Request) -> Credentials:
    return read_credentials(request.scope)


log = structlog.get_logger(__name__)

_NO_KEY = "no API key: send it in the `api-key` header"


@dataclass(frozen=True)
class Caller:
    merchant_id: str
    is_admin: bool
    key_id: str | None = None
    # The profile named by `x-profile-id`, checked to be the merchant's; None when the header is absent.
    profile: dict[str, Any] | None = None
    scopes: frozenset[ApiKeyScope] = ALL_SCOPES
    # When the caller's key expires (None: never, or the admin key).
    expires_at: datetime | None = None

    @property
    def profile_id(self) -> str | None:
        return self.profile["_id"] if self.profile else None


# Where a request keeps who it acted as (the ASGI scope's state, which the routes' `request.state` is): the audit
# trail's (http/audit.py).
ACTOR = "audit_actor"


def act_as(request: Request, actor: AuditActor) -> None:
    """Mark the request as acting as `actor`: a changing request so marked is an audit entry."""
    setattr(request.state, ACTOR, actor)


class KeyRefusal(Enum):
    """Why a merchant key does not authenticate a request (the value is the log's `reason`)."""

    UNKNOWN = "unknown or revoked key"
    EXPIRED = "expired key"
    OTHER_MERCHANT = "merchant mismatch"


def _key_actor(record: dict[str, Any], credentials: Credentials) -> AuditActor:
    return AuditActor(AuditActorKind.API_KEY, record["merchant_id"], record["_id"], credentials.profile_id)


class Authenticator:
    def __init__(self, adapters: IntakeAdapters, admin_key: str, hash_secret: str, failures: AuthFailures) -> None:
        self._merchants = adapters.merchants
        self._api_keys = adapters.api_keys
        self._profiles = adapters.profiles
        self._clock = adapters.clock
        self._admin_key = admin_key
        self._hash_secret = hash_secret
        self._failures = failures

    def _presented(self, request: Request) -> tuple[Credentials, str]:
        credentials = credentials_of(request)
        if credentials.api_key is None:
            raise ApiProblem(ApiError.UNAUTHORIZED, reason=_NO_KEY)
        self._failures.check(credentials.address)
        return credentials, credentials.api_key

    async def _failed(
        self, credentials: Credentials, request: Request, why: str, reason: str | None = None
    ) -> ApiProblem:
        """A failed authentication (counted against the client's address), answered 401 with `reason`."""
        await self._failures.failed(credentials.address)
        log.info("auth.rejected", reason=why, path=request.url.path)
        return ApiProblem(ApiError.UNAUTHORIZED, reason=reason)

    async def require_admin(self, request: Request) -> None:
        credentials, key = self._presented(request)
        if not same_secret(key, self._admin_key):
            raise await self._failed(credentials, request, "not the admin key", "this endpoint needs the admin API key")
        act_as(request, AuditActor(AuditActorKind.ADMIN_KEY, credentials.merchant_id or None))

    async def merchant(self, request: Request, *, access: Access, admin_allowed: bool = True) -> Caller:
        """The merchant the caller acts for: a merchant key's own, or `x-merchant-id` with the admin key."""
        credentials, key = self._presented(request)
        if same_secret(key, self._admin_key):
            if not admin_allowed:
                raise ApiProblem(ApiError.UNAUTHORIZED, reason="this endpoint needs a merchant API key")
            if not credentials.merchant_id:
                raise ApiProblem(ApiError.MISSING_REQUIRED_FIELD, field_name="x-merchant-id (header)")
            if await self._merchants.get(credentials.merchant_id) is None:
                raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
            caller = await self.with_profile(credentials, Caller(merchant_id=credentials.merchant_id, is_admin=True))
            act_as(request, AuditActor(AuditActorKind.ADMIN_KEY, caller.merchant_id, None, caller.profile_id))
            return caller
        record = await self._api_keys.by_digest(hash_api_key(key, self._hash_secret))
        refusal = self._unusable(record, credentials)
        if refusal is KeyRefusal.OTHER_MERCHANT:
            assert record is not None
            log.info("auth.rejected", reason=refusal.value, key_id=record["_id"], path=request.url.path)
            raise ApiProblem(ApiError.UNAUTHORIZED, reason="x-merchant-id does not match the API key's merchant")
        if refusal is not None or record is None:
            expired = refusal is KeyRefusal.EXPIRED
            why = (refusal or KeyRefusal.UNKNOWN).value
            raise await self._failed(credentials, request, why, "the API key has expired" if expired else None)
        # Known from here: a refusal for want of a scope is an audit entry too.
        act_as(request, _key_actor(record, credentials))
        scopes = scopes_of(record)
        check_access(scopes, access)
        caller = Caller(record["merchant_id"], False, record["_id"], scopes=scopes, expires_at=record.get("expires_at"))
        return await self.with_profile(credentials, caller)

    def _unusable(self, record: dict[str, Any] | None, credentials: Credentials) -> KeyRefusal | None:
        """Why a key's record does not authenticate the request, or None when it does."""
        if record is None or record.get("revoked"):
            return KeyRefusal.UNKNOWN
        expires = record.get("expires_at")
        if expires is not None and expires <= self._clock.now():
            return KeyRefusal.EXPIRED
        if credentials.merchant_id and credentials.merchant_id != record["merchant_id"]:
            return KeyRefusal.OTHER_MERCHANT
        return None

    async def identify(self, request: Request) -> None:
        """Who sent a request refused before its route ran (a body or a path the models refuse), for the audit
        trail: the admin key (for the merchant `x-merchant-id` names, when there is one), or a merchant key that
        would authenticate it. Nothing is refused or counted here: the request's answer stays the refusal."""
        credentials = credentials_of(request)
        key = credentials.api_key
        if key is None:
            return
        if same_secret(key, self._admin_key):
            merchant_id = credentials.merchant_id or None
            if merchant_id is not None and await self._merchants.get(merchant_id) is None:
                merchant_id = None
            act_as(request, AuditActor(AuditActorKind.ADMIN_KEY, merchant_id, None, credentials.profile_id))
            return
        record = await self._api_keys.by_digest(hash_api_key(key, self._hash_secret))
        if self._unusable(record, credentials) is None and record is not None:
            act_as(request, _key_actor(record, credentials))

    async def with_profile(self, credentials: Credentials, caller: Caller) -> Caller:
        """`caller` narrowed to the profile `x-profile-id` names (one of its merchant's; 404 otherwise)."""
        profile_id = credentials.profile_id
        if not profile_id:
            return caller
        profile = await self._profiles.get(caller.merchant_id, profile_id)
        if profile is None:
            raise ApiProblem(ApiError.PROFILE_NOT_FOUND, id=profile_id[:64])
        return replace(caller, profile=profile)

    def profile(self, caller: Caller) -> dict[str, Any]:
        """The `x-profile-id` profile, for routes that need one."""
        if caller.profile is None:
            raise ApiProblem(ApiError.MISSING_REQUIRED_FIELD, field_name="x-profile-id (header)")
        return caller.profile
