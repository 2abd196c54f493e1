"""The id rules of webhook events: time-ordered event ids, retry event ids, and record keys per merchant."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

# An attempt record after the first (automatic or manual retry) has the event id `<initial event id>_r<hex>`:
# the attempts of an event are one `_id` range, `[<key of the initial>, <key of the initial>` + ATTEMPTS_END)
# (initial event ids have one length).
RETRY_SEPARATOR = "_r"
ATTEMPTS_END = "`"  # the character after "_"
# Between a merchant id and an event id in a record's `_id`; merchant ids are [A-Za-z0-9_-] (MERCHANT_ID), so
# one merchant's `_id`s are exactly the range [`<merchant>/`, `<merchant>0`) ("0" follows "/").
KEY_SEPARATOR = "/"
MERCHANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
# How long before an attempt's creation (its time-ordered id) the list looks for the attempt's events: the
# dispatcher's clock may be behind the executor's (NTP keeps hosts within a second; more than this is a broken
# deployment, and the attempt's events would then be found by its payment id only).
CLOCK_SKEW = timedelta(minutes=5)


def millis(at: datetime) -> int:
    """Milliseconds since the epoch, floored as BSON stores a datetime."""
    return (at - EPOCH) // MILLISECOND


def initial_event_id(idempotent_id: str, created_at: datetime) -> str:
    """The id of a new initial event (`evt_` + 32 hex, as Hyperswitch's): 12 hex of its creation time in
    milliseconds, so a merchant's records sort by time, then 20 hex of the SHA-256 of its idempotent id, so two
    events created in the same millisecond differ. The claim keeps it: every dispatcher that meets the event
    afterwards uses the claimed id, so the `webhook-id` stays the same."""
    return f"evt_{millis(created_at):012x}{hashlib.sha256(idempotent_id.encode()).hexdigest()[:20]}"


def retry_event_id(initial_id: str, random_hex: str) -> str:
    """The event id of an attempt after the first: its initial event's id, `_r` and random hex digits (the
    caller draws them: 16 of them make a collision within one event's attempts negligible)."""
    return f"{initial_id}{RETRY_SEPARATOR}{random_hex}"


def checked_merchant_id(merchant_id: str) -> str:
    """The merchant id, if it can prefix record keys (ValueError otherwise)."""
    if not MERCHANT_ID.fullmatch(merchant_id):
        raise ValueError(f"merchant id {merchant_id!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return merchant_id


def record_key(merchant_id: str, event_id: str) -> str:
    """The `_id` of an event record: its merchant's id, then its event id. ValueError for a merchant id that
    could make one merchant's range overlap another's."""
    return f"{checked_merchant_id(merchant_id)}{KEY_SEPARATOR}{event_id}"


def created_at_of(object_id: str, now: datetime) -> datetime | None:
    """When an object with a time-ordered id (`…_pay_<uuid7 hex>`, `…_att_<uuid7 hex>`: new_payment_id,
    new_attempt_id) was created; None for an id of another shape."""
    tail = object_id.rpartition("_")[2]
    # Version 7, variant 10xx.
    if len(tail) != 32 or tail[12] != "7" or tail[16] not in "89ab":
        return None
    try:
        int(tail, 16)
    except ValueError:
        return None
    created = EPOCH + int(tail[:12], 16) * MILLISECOND
    # An id that only looks time-ordered: a time in the future would hide the object's events.
    return created if created <= now + CLOCK_SKEW else None
