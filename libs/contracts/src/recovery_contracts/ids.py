"""Identifier formats shared by every service (Hyperswitch-compatible where Hyperswitch defines one)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import string
import time
import uuid

_ALNUM = string.ascii_letters + string.digits


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): millisecond timestamp, then random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def random_alnum(length: int = 20) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_message_id() -> str:
    return str(uuid7())


def new_payment_id(cell_id: str) -> str:
    """`{cell}_pay_{32 hex, time-ordered}` as Hyperswitch's global payment ids."""
    return f"{cell_id}_pay_{uuid7().hex}"


def new_attempt_id(cell_id: str) -> str:
    return f"{cell_id}_att_{uuid7().hex}"


def new_event_id() -> str:
    """`evt_` + 32 hex, time-ordered."""
    return f"evt_{uuid7().hex}"


def new_profile_id() -> str:
    return f"pro_{random_alnum()}"


def new_connector_account_id() -> str:
    return f"mca_{random_alnum()}"


def new_merchant_id(name: str) -> str:
    """Hyperswitch merchant ids read like `cloth_seller_I7nS4iwZnxRDJtGfiNTy`: a slug of the name and a suffix."""
    slug = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.lower()).strip("_")[:32] or "merchant"
    return f"{slug}_{random_alnum()}"


def idempotent_event_id(primary_object_id: str, event_type: str) -> str:
    """Hyperswitch's key for "one initial event per (object, event type)": base64url, no padding, of SHA-256."""
    digest = hashlib.sha256(f"{primary_object_id}_{event_type}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
