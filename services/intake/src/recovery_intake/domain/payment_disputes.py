"""A dispute the payment connector decided against the merchant, as Stripe's webhook tells it, and the ids it is
kept under.

Stripe (https://docs.stripe.com/api/events/types#event_types-charge.dispute.closed,
https://docs.stripe.com/api/disputes/object): `charge.dispute.closed` carries the dispute, whose `status` says how
it ended; only `lost` (the money went back to the customer) is one this system acts on; `won` and
`warning_closed` (an inquiry that never became a dispute) take nothing back. Every other event type is acknowledged
and ignored. Pure: no I/O, time is an argument.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .deliveries import EventRefused, RefusalKind
from .stripe_events import StripeEvent, is_int, unix_time

DISPUTE_CLOSED = "charge.dispute.closed"
# Stripe's dispute `status` when the merchant lost it (closed by the merchant accepting it, or decided by the bank).
LOST = "lost"
STRIPE = "stripe"


@dataclass(frozen=True)
class LostDispute:
    """What intake takes from a lost dispute: the connector's words (its ids, status and reason), the charge it
    took back (`connector_transaction_id`: Stripe's PaymentIntent), how much (minor units) and when it was lost."""

    connector: str
    connector_dispute_id: str
    connector_transaction_id: str
    amount: int
    currency: str
    reason: str | None
    connector_status: str
    connector_created_at: datetime | None
    lost_at: datetime

    def dispute_id(self, merchant_id: str) -> str:
        """Ours, the same for every delivery of the dispute (whatever event carried it): what makes it apply once."""
        return dispute_id_for(merchant_id, self.connector, self.connector_dispute_id)


@dataclass(frozen=True)
class DisputeEvent:
    """A verified Stripe event read for disputes: its id (what a redelivery shares), its type, and the dispute
    when it is a lost one (None: acknowledged and ignored)."""

    event_id: str
    event_type: str
    lost: LostDispute | None


def dispute_id_for(merchant_id: str, connector: str, connector_dispute_id: str) -> str:
    """`dsp_` + 32 hex of SHA-256 over the merchant, the connector and its dispute id: deterministic, so that a
    dispute Stripe tells of twice (two events, or one event delivered twice) is one dispute here."""
    digest = hashlib.sha256(f"{merchant_id}:{connector}:{connector_dispute_id}".encode()).hexdigest()
    return f"dsp_{digest[:32]}"


def dispute_event(event: StripeEvent) -> DisputeEvent:
    """What a verified Stripe event is to disputes (EventRefused, 400, for a lost dispute that lacks what the refund
    and the merchant's webhook need). A dispute with no PaymentIntent (a charge made without one) is not a charge
    this system made: ignored."""
    dispute = event.data_object
    if event.event_type != DISPUTE_CLOSED or dispute.get("status") != LOST or not dispute.get("payment_intent"):
        return DisputeEvent(event.event_id, event.event_type, None)
    dispute_id, intent_id, amount = dispute.get("id"), dispute.get("payment_intent"), dispute.get("amount")
    currency, reason = dispute.get("currency"), dispute.get("reason")
    if dispute.get("object") != "dispute" or not isinstance(dispute_id, str) or not dispute_id:
        raise EventRefused(RefusalKind.INVALID, f"{DISPUTE_CLOSED} without a dispute in data.object")
    if not isinstance(intent_id, str):
        raise EventRefused(RefusalKind.INVALID, f"dispute {dispute_id}: payment_intent is not an id")
    if not is_int(amount) or amount < 1 or not isinstance(currency, str) or not currency:
        raise EventRefused(RefusalKind.INVALID, f"dispute {dispute_id}: no positive amount and currency")
    if event.created is None:
        raise EventRefused(RefusalKind.INVALID, f"event {event.event_id}: created is not a Unix time")
    lost = LostDispute(
        connector=STRIPE,
        connector_dispute_id=dispute_id,
        connector_transaction_id=intent_id,
        amount=amount,
        currency=currency.upper(),
        reason=reason if isinstance(reason, str) and reason else None,
        connector_status=LOST,
        connector_created_at=unix_time(dispute.get("created")),
        lost_at=event.created,
    )
    return DisputeEvent(event.event_id, event.event_type, lost)


@dataclass(frozen=True)
class ChargedAttempt:
    """The payment and attempt a PaymentIntent was created for, as the executor wrote them in its metadata."""

    payment_id: str
    attempt_id: str


def charged_attempt(payment_intent: dict[str, Any]) -> ChargedAttempt | None:
    """Whom a PaymentIntent read at Stripe was charged for: the executor puts `payment_id`, `attempt_id` and
    `attempt_number` in the metadata of every charge it makes (recovery_executor.adapters.stripe.charge_form).
    Without `attempt_id`, the attempt is named as the executor keys its attempts (`<payment_id>:<attempt_number>`,
    recovery_executor.domain.attempt.attempt_key). None (not a charge of this system's) without either."""
    metadata = payment_intent.get("metadata")
    if not isinstance(metadata, dict):
        return None
    payment_id, attempt_id = metadata.get("payment_id"), metadata.get("attempt_id")
    number = metadata.get("attempt_number")
    if not isinstance(payment_id, str) or not payment_id:
        return None
    if isinstance(attempt_id, str) and attempt_id:
        return ChargedAttempt(payment_id, attempt_id)
    if isinstance(number, str) and number.isdigit():
        return ChargedAttempt(payment_id, f"{payment_id}:{number}")
    return None
