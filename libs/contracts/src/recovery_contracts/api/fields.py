"""Bounded field types shared by the public HTTP bodies (the limits are part of the contract)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

# Hyperswitch's id types allow at most 64 characters of [A-Za-z0-9_-]; prefixes (`pro_`, `mca_`) are not
# checked on input so that ids minted elsewhere in the same format stay valid.
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]

# Ids of objects outside this system (invoice ids, processor ids such as `cus_…`, `pm_…`, `pi_…`), and their bound
# (a path or query parameter naming one is held to it too).
EXTERNAL_REFERENCE_CHARS = 255
ExternalReference = Annotated[str, Field(min_length=1, max_length=EXTERNAL_REFERENCE_CHARS)]

Name = Annotated[str, Field(min_length=1, max_length=64)]
Description = Annotated[str, Field(max_length=256)]
Secret = Annotated[str, Field(max_length=1024)]

MinorUnit = Annotated[StrictInt, Field(ge=0, le=10**15, description="amount in the currency's minor unit")]
Count = Annotated[StrictInt, Field(ge=0, le=10_000)]
Flag = StrictBool

MAX_METADATA_BYTES = 16_384
MAX_URL_LENGTH = 2048
MAX_CUSTOM_HEADERS = 20


_INT64 = 2**63


def _storable(value: Any, depth: int = 0) -> None:
    """What MongoDB can store: 64-bit integers, UTF-8 strings (no lone surrogates), bounded nesting."""
    if depth > 32:
        raise ValueError("metadata is nested more than 32 levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError("metadata integers must fit in 64 bits")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError("metadata strings must be valid Unicode (no lone surrogates)") from error
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, depth + 1)
            # MongoDB refuses NUL in key names, and `$` keys are operators to older servers and many tools.
            if "\x00" in key or key.startswith("$"):
                raise ValueError("metadata keys must not contain NUL or start with `$`")
            _storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)


def _bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    _storable(value)
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} are allowed")
    return value


# A free JSON object the merchant owns; stored and echoed, never interpreted.
Metadata = Annotated[dict[str, Any], AfterValidator(_bounded_metadata)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


# https-only outside a development allow-list is a deployment rule enforced by intake, not by the shape.
HttpUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_http_url)]

_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"  # RFC 9110 token


def _bounded_headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_CUSTOM_HEADERS:
        raise ValueError(f"at most {MAX_CUSTOM_HEADERS} headers are allowed")
    for name, header_value in value.items():
        if any(c in header_value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} contains a line break or NUL")
    return value


HeaderMap = Annotated[
    dict[
        Annotated[str, Field(pattern=_HEADER_NAME)],
        Annotated[str, Field(max_length=1024)],
    ],
    AfterValidator(_bounded_headers),
]


class RequestBody(BaseModel):
    """A request body: unknown keys are rejected, as Hyperswitch's serde `deny_unknown_fields`."""

    model_config = ConfigDict(extra="forbid")


class ResponseBody(BaseModel):
    """A response body. Strict too, so a producer bug cannot leak an undocumented (perhaps secret) field."""

    model_config = ConfigDict(extra="forbid")
