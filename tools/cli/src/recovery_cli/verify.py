"""Checking a received webhook the way a merchant would: Hyperswitch's signature and Standard Webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from recovery_contracts.verification import (
    DEFAULT_TOLERANCE,
    WebhookVerificationError,
    verify_hyperswitch_signature,
    verify_standard_webhook,
)


@dataclass(frozen=True)
class Check:
    scheme: str
    passed: bool
    reason: str


def verify_webhook(
    body: bytes,
    *,
    hash_key: str | None = None,
    signature_hex: str | None = None,
    whsec_secret: str | None = None,
    headers: Mapping[str, str] | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> list[Check]:
    """One check per scheme the caller gave the means for; the webhook verifies when every check passed."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    checks = []
    signature = signature_hex or lowered.get("x-webhook-signature-512")
    if hash_key is not None:
        if not signature:
            checks.append(
                Check("hyperswitch", False, "no signature (--signature or an X-Webhook-Signature-512 header)")
            )
        elif verify_hyperswitch_signature(body, signature, hash_key):
            checks.append(Check("hyperswitch", True, "X-Webhook-Signature-512 is the HMAC-SHA512 of the body"))
        else:
            checks.append(Check("hyperswitch", False, "signature does not match the body under this hash key"))
    if whsec_secret is not None:
        try:
            verify_standard_webhook(body, lowered, whsec_secret, tolerance=tolerance, now=now)
        except (WebhookVerificationError, ValueError) as error:
            checks.append(Check("standard-webhooks", False, str(error)))
        else:
            checks.append(Check("standard-webhooks", True, "webhook-signature v1 matches, timestamp within tolerance"))
    return checks
