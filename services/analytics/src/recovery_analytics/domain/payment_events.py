"""The events a payment's view is folded from: which kinds they are, which payment each concerns, and the order the
fold takes them in (a function of the set of events, not of the order they arrived in)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecoveryScheduled, RecoveryUpdated

# The place of each kind of event in a recovery's life: the tie-break between events of the same instant.
_RANK = {
    MessageType.RECOVERY_SCHEDULED: 0,
    MessageType.RECOVERY_UPDATED: 1,
    MessageType.PAYMENT_ATTEMPT_FAILED: 2,
    MessageType.PAYMENT_SUCCEEDED: 3,
    MessageType.PAYMENT_FAILED: 4,
    MessageType.WEBHOOK_DELIVERY_FAILED: 5,
    MessageType.RECORD_BACK_UPDATED: 6,
    MessageType.RECOVERY_SHADOW_PLANNED: 7,
    MessageType.PAYMENT_DISPUTE_UPDATED: 8,
    MessageType.PAYMENT_DISPUTE_LOST: 9,
}
# The events a payment's view is folded from (`webhook.endpoint-disabled` concerns a profile, not a payment).
PAYMENT_EVENTS = frozenset(_RANK)


def payment_of(envelope: Envelope[Any]) -> str | None:
    """The payment an event concerns (its correlation id, or the payment id it names)."""
    payload = envelope.payload
    named = getattr(payload, "payment_id", None)
    if isinstance(named, str):
        return named
    if isinstance(payload, RecoveryScheduled | RecoveryUpdated):
        return payload.payment.payment_id
    return envelope.correlation_id


def _order(envelope: Envelope[Any]) -> tuple[datetime, int, str]:
    return envelope.occurred_at, _RANK.get(envelope.type, len(_RANK)), envelope.message_id


def in_order(events: Iterable[Envelope[Any]]) -> list[Envelope[Any]]:
    """The events a view is folded from, once each (by message id), in the order the fold takes them: the set of
    `events`, whatever order it came in, gives the same list."""
    unique = {e.message_id: e for e in events if e.type in PAYMENT_EVENTS}
    return sorted(unique.values(), key=_order)
