"""`/v2/api-keys`: merchant API keys (create shows the key once; retrieve and list show only its prefix)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PlainSerializer

from recovery_contracts.api.fields import Description, Identifier, Name, RequestBody, ResponseBody
from recovery_contracts.timestamps import UtcMillis, format_ms, in_utc

MAX_PAGE_SIZE = 100


def _expiry_ms(value: datetime | str) -> str:
    return value if isinstance(value, str) else format_ms(value)


def _aware(value: datetime | str) -> datetime | str:
    return in_utc(value) if isinstance(value, datetime) else value


class ApiKeyScope(StrEnum):
    """What a merchant key may do (an extension: Hyperswitch's merchant keys have no scopes)."""

    # Recoveries, payments, events and process trackers: read and write.
    PAYMENTS = "payments"
    # Reads of everything but secrets (GET, and the events list).
    READ_ONLY = "read_only"
    # API keys, profiles, connector accounts and signing secrets.
    MANAGEMENT = "management"


def _distinct(scopes: list[ApiKeyScope]) -> list[ApiKeyScope]:
    return sorted(set(scopes))


# At least one scope, each at most once (repeats are dropped), in a stable order.
ApiKeyScopes = Annotated[
    list[ApiKeyScope],
    Field(min_length=1, max_length=len(ApiKeyScope)),
    AfterValidator(_distinct),
]


# `"never"` or an ISO 8601 date-time (naive values are taken as UTC). That the time is in the future is
# checked by intake, which owns the clock.
ApiKeyExpiration = Annotated[
    Literal["never"] | datetime,
    AfterValidator(_aware),
    PlainSerializer(_expiry_ms, return_type=str),
]


class ApiKeyCreate(RequestBody):
    name: Name
    description: Description | None = None
    expiration: ApiKeyExpiration
    scopes: ApiKeyScopes | None = Field(
        default=None,
        description="extension: what the new key may do, at most what the creating key may; "
        "omitted: the creating key's scopes (the admin key's: all)",
    )


class ApiKeyUpdate(RequestBody):
    """`PUT /v2/api-keys/{key_id}`: Hyperswitch's update body. A field left out (or null) keeps its value. There is
    no `scopes`: a key's scopes are fixed when it is minted (mint another to change them)."""

    name: Name | None = None
    description: Description | None = None
    expiration: ApiKeyExpiration | None = None


class ListApiKeyConstraints(RequestBody):
    """Query of `GET /v2/api-keys/list`."""

    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] | None = None
    skip: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class ApiKeyCreateResponse(ResponseBody):
    key_id: Identifier
    merchant_id: Identifier
    name: Name
    description: Description | None = None
    api_key: str = Field(description="the plaintext key: shown here once, stored only as a keyed hash")
    created: UtcMillis
    expiration: ApiKeyExpiration
    scopes: ApiKeyScopes | None = Field(default=None, description="extension: what the key may do")


class RetrieveApiKeyResponse(ResponseBody):
    key_id: Identifier
    merchant_id: Identifier
    name: Name
    description: Description | None = None
    prefix: str = Field(max_length=64, description="the first characters of the key, to recognise it")
    created: UtcMillis
    expiration: ApiKeyExpiration
    scopes: ApiKeyScopes | None = Field(default=None, description="extension: what the key may do")


class RevokeApiKeyResponse(ResponseBody):
    merchant_id: Identifier
    key_id: Identifier
    revoked: bool
