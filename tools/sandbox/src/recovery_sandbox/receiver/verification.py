"""Checks a delivery's signatures the way a merchant would, without any of the project's signing code."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from standardwebhooks import Webhook, WebhookVerificationError

SIGNATURE_512_HEADER = "x-webhook-signature-512"
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class Verification:
    """`valid` is None when the header is there but no key is configured to check it with."""

    present: bool
    valid: bool | None
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def expected_signature_512(hash_key: str, body: bytes) -> str:
    # Hyperswitch's scheme: lowercase hex HMAC-SHA512; key = the hash key as UTF-8, message = the body bytes.
    return hmac.new(hash_key.encode("utf-8"), body, hashlib.sha512).hexdigest()


def verify_signature_512(hash_key: str | None, body: bytes, headers: Mapping[str, str]) -> Verification:
    received = headers.get(SIGNATURE_512_HEADER)
    if received is None:
        return Verification(present=False, valid=False if hash_key else None, error="header missing")
    if hash_key is None:
        return Verification(present=True, valid=None, error="no hash key configured")
    valid = hmac.compare_digest(received, expected_signature_512(hash_key, body))
    return Verification(present=True, valid=valid, error=None if valid else "signature mismatch")


def verify_standard_webhooks(secret: str | None, body: bytes, headers: Mapping[str, str]) -> Verification:
    present = all(name in headers for name in STANDARD_HEADERS)
    if secret is None:
        return Verification(present=present, valid=None, error="no whsec secret configured")
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        return Verification(present=present, valid=False, error=str(exc))
    except (ValueError, UnicodeDecodeError) as exc:
        # A malformed signature header or a body that is not UTF-8: the library raises these unwrapped.
        return Verification(present=present, valid=False, error=f"{type(exc).__name__}: {exc}")
    return Verification(present=present, valid=True)


def check_whsec_secret(secret: str) -> None:
    """Raises ValueError for a secret the standardwebhooks library cannot use."""
    try:
        Webhook(secret)
    except Exception as exc:
        raise ValueError(f"unusable whsec secret: {exc}") from exc
