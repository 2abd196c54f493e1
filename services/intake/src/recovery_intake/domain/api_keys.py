"""Merchant API keys: random, prefixed, shown once, stored as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recovery_contracts.api.api_keys import ApiKeyCreate, ApiKeyScope, ApiKeyUpdate
from recovery_contracts.ids import random_alnum

# 32 bytes of entropy, URL-safe base64 (43 characters).
_KEY_BYTES = 32


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    plaintext: str
    prefix: str
    digest: str


def hash_api_key(plaintext: str, secret: str) -> str:
    return hmac.new(secret.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def issue_api_key(environment: str, secret: str) -> IssuedKey:
    plaintext = f"{environment}_{secrets.token_urlsafe(_KEY_BYTES)}"
    return IssuedKey(
        key_id=f"key_{random_alnum()}",
        plaintext=plaintext,
        prefix=plaintext[:12],
        digest=hash_api_key(plaintext, secret),
    )


def api_key_document(
    issued: IssuedKey,
    merchant_id: str,
    body: ApiKeyCreate,
    now: datetime,
    *,
    scopes: Collection[ApiKeyScope],
    created_by_key: str | None,
) -> dict[str, Any]:
    """The key as stored: its keyed hash (`digest`) and the prefix shown in listings, never the key itself; its
    scopes, and the key that minted it (None: the admin key), whose revocation revokes this one too."""
    return {
        "_id": issued.key_id,
        "merchant_id": merchant_id,
        "name": body.name,
        "description": body.description,
        "prefix": issued.prefix,
        "digest": issued.digest,
        "created": now,
        **_expiry(body.expiration),
        "revoked": False,
        "scopes": sorted(s.value for s in scopes),
        "created_by_key": created_by_key,
    }


def api_key_changes(body: ApiKeyUpdate) -> dict[str, Any]:
    """The stored fields an update sets: those it sends (a null keeps the stored value, as in Hyperswitch)."""
    changes: dict[str, Any] = body.model_dump(include={"name", "description"}, exclude_none=True)
    if body.expiration is not None:
        changes.update(_expiry(body.expiration))
    return changes


def _expiry(expiration: datetime | str) -> dict[str, Any]:
    """`expiration` as given ("never" or a time) and `expires_at`, the time authentication compares (None: never)."""
    return {"expiration": expiration, "expires_at": expiration if isinstance(expiration, datetime) else None}


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def generate_hash_key() -> str:
    """A profile's `payment_response_hash_key` when none is given: 64 random alphanumerics, as Hyperswitch."""
    return random_alnum(64)
