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
    content_object: Mapping[str, Any],
    timestamp: datetime,
) -> bytes:
    """The webhook body `{merchant_id, event_id, event_type, content: {type, object}, timestamp}`.

    Keys in Hyperswitch's order, the object's own key order kept, compact JSON, UTF-8 (non-ASCII kept as
    is, like serde_json). These bytes are signed and sent as they are: every retry reuses them, never
    re-serialized.
    `content_object` must already be JSON-ready (for a pydantic model: `model_dump(mode="json")`).
    """
    document = {
        "merchant_id": merchant_id,
        "event_id": event_id,
        "event_type": event_type,
        "content": {"type": content_type, "object": dict(content_object)},
        "timestamp": format_timestamp(timestamp),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
