"""The opaque `cursor` of this system's paged lists (the recovery list's `next_cursor`, the audit trail's): the page
after an item, named by when it was made and its id (the order of every such list, newest first)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime


def encode_cursor(at: datetime, item_id: str) -> str:
    raw = json.dumps([at.astimezone(UTC).isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The (time, id) `encode_cursor` gave; None for anything else."""
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(item_id)
    except (ValueError, TypeError, binascii.Error):
        return None
