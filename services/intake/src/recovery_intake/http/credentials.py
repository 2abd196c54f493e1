"""The credential headers of a request, read once: the rate limit and the authentication use the same values.

`api-key` (or Hyperswitch's `Authorization: api-key=<key>`), `x-merchant-id` and `x-profile-id`. A request
that sends one of them twice, or the key in both forms, is refused (400): which copy counts would otherwise
depend on who reads it, and a second random `api-key` must not buy a fresh rate-limit bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope

from recovery_contracts.api.errors import ApiError
from recovery_intake.http.errors import ApiProblem

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
