"""Stripe's webhook event, whichever of Stripe's products sends it (Stripe Billing's invoice events to the billing
webhooks' door, the payment connector's dispute events to its own): the `Stripe-Signature` check, and the envelope
every event shares, read once (https://docs.stripe.com/webhooks#verify-manually,
https://docs.stripe.com/api/events/object). Pure: no I/O, time is an argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from .deliveries import SIGNATURE_TOLERANCE_SECONDS, EventRefused, RefusalKind, check_timed_hmac


@dataclass(frozen=True)
class StripeEvent:
    """A verified Stripe event's envelope: its id (what a redelivery shares), its type, the object it is about
    (`data.object`: an invoice, a dispute, ...) and when Stripe created it (None when that is not a Unix time)."""

    event_id: str
    event_type: str
    data_object: dict[str, Any]
    created: datetime | None


def verify_stripe_signature(
    header: str | None,
    payload: bytes,
    secret: str,
    now: datetime,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """Stripe's scheme: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, v1 = HMAC-SHA256(secret, "<t>.<payload>"),
    compared in constant time; a timestamp outside the tolerance is refused (a replay)."""
    if not header:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "no Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():  # "²" is a digit int() refuses
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "Stripe-Signature lacks t= or v1=")
    age_seconds = now.timestamp() - timestamp
    check_timed_hmac("Stripe-Signature", str(timestamp), signatures, payload, secret, age_seconds, tolerance_seconds)


def verified_stripe_event(header: str | None, payload: bytes, secret: str, received_at: datetime) -> StripeEvent:
    """The event a delivery carries, once its `Stripe-Signature` is verified with the endpoint's secret; EventRefused
    (401) for a signature that does not hold, (400) for a payload that is not a Stripe event."""
    verify_stripe_signature(header, payload, secret, received_at)
    return read_stripe_event(payload)


def read_stripe_event(payload: bytes) -> StripeEvent:
    """The envelope of a verified payload; EventRefused (400) for one that is not a Stripe event."""
    try:
        event = json.loads(payload)
        event_id, event_type = event["id"], event["type"]
        data_object = event["data"]["object"]
    except (ValueError, KeyError, TypeError) as error:
        raise EventRefused(RefusalKind.INVALID, f"not a Stripe event: {error}") from error
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(data_object, dict):
        raise EventRefused(RefusalKind.INVALID, "not a Stripe event: id, type or data.object malformed")
    return StripeEvent(event_id, event_type, data_object, unix_time(event.get("created")))


def unix_time(value: Any) -> datetime | None:
    """Stripe's times (Unix seconds) as aware datetimes; None for anything else (a time past year 9999 too)."""
    if not is_int(value) or value < 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (not a boolean, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)
