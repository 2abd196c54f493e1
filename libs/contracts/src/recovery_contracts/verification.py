"""Verifying this engine's webhooks on the receiving side: Hyperswitch's signature and Standard Webhooks v1.

Standard library only, so any merchant service can import it. Verify the raw body bytes as received,
before parsing them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

WHSEC_PREFIX = "whsec_"
DEFAULT_TOLERANCE = timedelta(minutes=5)


class WebhookVerificationError(Exception):
    """The webhook did not verify; `reason` says why (answer 400/401 and do not process it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_hyperswitch_signature(body: bytes, signature_hex: str, hash_key: str) -> bool:
    """Whether `X-Webhook-Signature-512` is the HMAC-SHA512 (hex) of `body` under the profile's
    `payment_response_hash_key`. Constant-time; the hex case does not matter.

    This scheme signs the body only (no timestamp), so a captured webhook can be replayed: deduplicate
    on `event_id`, or prefer the Standard Webhooks check.
    """
    expected = hmac.new(hash_key.encode("utf-8"), body, hashlib.sha512).hexdigest()
    candidate = signature_hex.strip().lower()
    if not candidate.isascii():
        return False
    return hmac.compare_digest(expected, candidate)


def _secret_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("webhook secret is not valid base64 after the whsec_ prefix") from error
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> None:
    """Check the Standard Webhooks v1 headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

    Passes when any `v1,` entry of `webhook-signature` is the base64 HMAC-SHA256 of
    `{id}.{timestamp}.{body}` under the `whsec_` secret (or under any of several secrets, while you
    rotate) and the timestamp is within `tolerance` of `now`; otherwise raises `WebhookVerificationError`.
    Header names are matched case-insensitively. Use `webhook-id` as your idempotency key: it is the same
    on every retry of an event.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = _required(lowered, "webhook-id")
    timestamp_text = _required(lowered, "webhook-timestamp").strip()
    signature_header = _required(lowered, "webhook-signature")

    if not (timestamp_text.isascii() and timestamp_text.isdigit()):
        raise WebhookVerificationError("invalid webhook-timestamp header: not unix seconds")
    timestamp = int(timestamp_text)
    current = (now or datetime.now(UTC)).timestamp()
    if timestamp < current - tolerance.total_seconds():
        raise WebhookVerificationError("webhook-timestamp too old")
    if timestamp > current + tolerance.total_seconds():
        raise WebhookVerificationError("webhook-timestamp too new")

    secrets = [secret] if isinstance(secret, str) else list(secret)
    message = f"{webhook_id}.{timestamp_text}.".encode() + body
    expected = [base64.b64encode(hmac.new(_secret_key(key), message, hashlib.sha256).digest()) for key in secrets]
    for entry in signature_header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded.isascii():
            continue
        candidate = encoded.encode("ascii")
        if any(hmac.compare_digest(candidate, signature) for signature in expected):
            return
    raise WebhookVerificationError("no matching signature")
