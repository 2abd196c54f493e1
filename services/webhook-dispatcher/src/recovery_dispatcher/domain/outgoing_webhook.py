"""The webhook request a merchant receives: Hyperswitch's outgoing-webhook body, serialized once into the exact
bytes that are signed and sent; its signatures (Hyperswitch HMAC-SHA512 and Standard Webhooks v1) and the ordered
request headers."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import secrets as random_source
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from recovery_contracts.api.masking import mask_secret
from recovery_contracts.verification import WHSEC_PREFIX

# -- the body ---------------------------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, as Hyperswitch writes it (2025-09-07T20:05:02.792Z).

    A naive datetime is refused: the clock is injected and must say which zone it means.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def build_body(
    *,
    merchant_id: str,
    event_id: str,
    event_type: str,
    content_type: str,
    content_object: Mapping[str, Any] | bytes,
    timestamp: datetime,
) -> bytes:
    """The webhook body `{merchant_id, event_id, event_type, content: {type, object}, timestamp}`.

    Keys in Hyperswitch's order, the object's own key order kept, compact JSON, UTF-8 (non-ASCII kept as
    is, like serde_json). These bytes are signed and sent as they are: every retry reuses them, never
    re-serialized.
    `content_object`: the object already serialized as compact JSON (bytes; for a pydantic model,
    `model_dump_json()`: pydantic's serializer, several times cheaper than dumping to a dict and encoding
    that), or a JSON-ready mapping.
    """
    if isinstance(content_object, bytes):
        object_json = content_object
    else:
        object_json = _compact(dict(content_object)).encode("utf-8")
    head = (
        f'{{"merchant_id":{_compact(merchant_id)},"event_id":{_compact(event_id)},'
        f'"event_type":{_compact(event_type)},"content":{{"type":{_compact(content_type)},"object":'
    )
    tail = f'}},"timestamp":{_compact(format_timestamp(timestamp))}}}'
    return b"".join((head.encode("utf-8"), object_json, tail.encode("utf-8")))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- signatures and headers -------------------------------------------------------------------------------------

CONTENT_TYPE = "application/json"
DEFAULT_USER_AGENT = "recovery-engine-webhooks/1"
HYPERSWITCH_SIGNATURE_HEADER = "X-Webhook-Signature-512"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
# The event's number within its payment (1, 2, ...): receivers can spot an event that overtook another.
WEBHOOK_SEQUENCE_HEADER = "webhook-sequence"

# Headers a profile's custom headers can never set: the signatures and ids a receiver trusts, and the
# framing headers the HTTP client owns. Compared case-insensitively.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "User-Agent",
        HYPERSWITCH_SIGNATURE_HEADER,
        WEBHOOK_ID_HEADER,
        WEBHOOK_TIMESTAMP_HEADER,
        WEBHOOK_SIGNATURE_HEADER,
        WEBHOOK_SEQUENCE_HEADER,
    )
)

Headers = list[tuple[str, str]]


def sign_hyperswitch(body: bytes, hash_key: str) -> str:
    """Lowercase hex HMAC-SHA512 of the exact body bytes, keyed by the profile's
    `payment_response_hash_key` (UTF-8 bytes)."""
    return hmac.digest(hash_key.encode("utf-8"), body, "sha512").hex()


@functools.lru_cache(maxsize=1024)
def decode_whsec_secret(secret: str) -> bytes:
    """The key bytes of a Standard Webhooks secret (`whsec_` + base64); the prefix is optional."""
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("webhook secret is not valid base64 after the whsec_ prefix") from error
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign_standard(webhook_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` value: one `v1,<base64 HMAC-SHA256>` entry per secret, space-separated.

    Signs `{id}.{timestamp}.{body}`. Several secrets sign during a rotation overlap so receivers holding
    either the old or the new secret verify.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    message = f"{webhook_id}.{timestamp}.".encode() + body
    entries = []
    for secret in secrets:
        digest = hmac.digest(decode_whsec_secret(secret), message, "sha256")
        entries.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(entries)


def generate_whsec_secret() -> str:
    """A new per-profile Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return WHSEC_PREFIX + base64.b64encode(random_source.token_bytes(32)).decode("ascii")


def build_headers(
    *,
    body: bytes,
    webhook_id: str,
    timestamp: int,
    hash_key: str | None,
    whsec_secrets: Sequence[str] = (),
    custom_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
    sequence: int | None = None,
) -> Headers:
    """The request headers of one delivery attempt, in order.

    Content-Type, User-Agent, the profile's custom headers (reserved names dropped), then
    `X-Webhook-Signature-512` (only with a hash key) and the Standard Webhooks trio (`webhook-signature`
    only with at least one secret), then `webhook-sequence` when given. `webhook_id` is the same for
    every attempt of an event; `timestamp`
    (unix seconds) is this attempt's.
    """
    headers: Headers = [("Content-Type", CONTENT_TYPE), ("User-Agent", user_agent)]
    custom = custom_headers.items() if isinstance(custom_headers, Mapping) else (custom_headers or ())
    headers.extend((name, value) for name, value in custom if name.lower() not in RESERVED_HEADERS)
    if hash_key:
        headers.append((HYPERSWITCH_SIGNATURE_HEADER, sign_hyperswitch(body, hash_key)))
    headers.append((WEBHOOK_ID_HEADER, webhook_id))
    headers.append((WEBHOOK_TIMESTAMP_HEADER, str(timestamp)))
    if whsec_secrets:
        headers.append((WEBHOOK_SIGNATURE_HEADER, sign_standard(webhook_id, timestamp, body, whsec_secrets)))
    if sequence is not None:
        headers.append((WEBHOOK_SEQUENCE_HEADER, str(sequence)))
    return headers


def recorded_headers(headers: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """An attempt's request headers as its event record keeps them and the events API shows them: the profile's
    custom header values masked (`mask_secret`: merchants put their endpoint's credentials there), names and order
    kept. Every header not reserved is a custom one (`build_headers` drops custom headers with reserved names); the
    reserved ones stay as sent: the signatures are HMACs of this body, no secret."""
    return tuple((name, value if name.lower() in RESERVED_HEADERS else mask_secret(value)) for name, value in headers)
