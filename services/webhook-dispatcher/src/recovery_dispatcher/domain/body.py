"""The Hyperswitch outgoing-webhook body, serialized once into the exact bytes that are signed and sent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


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
