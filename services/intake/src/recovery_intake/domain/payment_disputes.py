"""A dispute on a payment, as the payment connector's webhook tells it (Stripe), and the ids it is kept under.

Stripe (https://docs.stripe.com/api/events/types#event_types-charge.dispute.created,
https://docs.stripe.com/api/disputes/object): `charge.dispute.created`, `charge.dispute.updated` and
`charge.dispute.closed` carry the dispute, whose `status` is where it stands; this system reads the status, not the
event's type (events may arrive out of order, the status is the truth). The statuses map to Hyperswitch's
`DisputeStage` and `DisputeStatus` as its Stripe connector maps them: an inquiry's `warning_needs_response`,
`warning_under_review` and `warning_closed` are the pre-dispute stage's opened, challenged and cancelled;
`needs_response`, `under_review`, `won` and `lost` the dispute stage's opened, challenged, won and lost. Any other
status (`prevented`, Stripe's newer ones) and every other event type are acknowledged and ignored. Pure: no I/O,
time is an argument.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recovery_contracts.api.disputes import EVIDENCE_FILE_TYPES, MAX_EVIDENCE_FILE_BYTES
from recovery_contracts.disputes import DisputeStage, DisputeStatus

from .deliveries import EventRefused, RefusalKind
from .stripe_events import StripeEvent, is_int, unix_time

DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"})
# Stripe's dispute `status`: the stage and status it is in Hyperswitch's words.
STAGE_AND_STATUS = {
    "warning_needs_response": (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_OPENED),
    "warning_under_review": (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_CHALLENGED),
    "warning_closed": (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_CANCELLED),
    "needs_response": (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_OPENED),
    "under_review": (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_CHALLENGED),
    "won": (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_WON),
    "lost": (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_LOST),
}
STRIPE = "stripe"


def evidence_file_kind(content_type: str | None) -> str:
    """A file's MIME type as its part's `Content-Type` says it, without parameters ("" when not said)."""
    return (content_type or "").split(";")[0].strip().lower()


def evidence_file_refusal(content_type: str | None, size: int) -> str | None:
    """Why a file cannot be uploaded as a dispute's evidence (Stripe's rules for purpose `dispute_evidence`: PDF,
    JPEG or PNG, at most MAX_EVIDENCE_FILE_BYTES, not empty); None when it can."""
    kind = evidence_file_kind(content_type)
    if kind not in EVIDENCE_FILE_TYPES:
        return f"file: type {kind or 'not given'}; Stripe takes dispute evidence as PDF, JPEG or PNG"
    if size == 0:
        return "file: empty"
    if size > MAX_EVIDENCE_FILE_BYTES:
        return f"file: {size} bytes, over the {MAX_EVIDENCE_FILE_BYTES} Stripe takes for dispute evidence"
    return None


class DisputeAnswerRefused(Exception):
    """The payment connector refused the merchant's answer to a dispute (its message says why: closed already,
    evidence submitted already, past its deadline)."""


@dataclass(frozen=True)
class DisputeReport:
    """What intake takes from a dispute's event: the connector's words (its ids, status and reason), the charge it
    is on (`connector_transaction_id`: Stripe's PaymentIntent), how much (minor units), where it stands in
    Hyperswitch's words and when the connector told of it (its event's creation time)."""

    connector: str
    connector_dispute_id: str
    connector_transaction_id: str
    amount: int
    currency: str
    reason: str | None
    connector_status: str
    stage: DisputeStage
    status: DisputeStatus
    connector_created_at: datetime | None
    told_at: datetime
    # By when the merchant must answer (Stripe's `evidence_details.due_by`): Hyperswitch's `challenge_required_by`.
    challenge_required_by: datetime | None = None

    def dispute_id(self, merchant_id: str) -> str:
        """Ours, the same for every delivery of the dispute (whatever event carried it): what makes it apply once."""
        return dispute_id_for(merchant_id, self.connector, self.connector_dispute_id)


@dataclass(frozen=True)
class DisputeEvent:
    """A verified Stripe event read for disputes: its id (what a redelivery shares), its type, and the dispute
    when it tells of one in a status this system knows (None: acknowledged and ignored)."""

    event_id: str
    event_type: str
    dispute: DisputeReport | None


def dispute_id_for(merchant_id: str, connector: str, connector_dispute_id: str) -> str:
    """`dsp_` + 32 hex of SHA-256 over the merchant, the connector and its dispute id: deterministic, so that a
    dispute Stripe tells of twice (two events, or one event delivered twice) is one dispute here."""
    digest = hashlib.sha256(f"{merchant_id}:{connector}:{connector_dispute_id}".encode()).hexdigest()
    return f"dsp_{digest[:32]}"


def dispute_event(event: StripeEvent) -> DisputeEvent:
    """What a verified Stripe event is to disputes (EventRefused, 400, for a dispute's event that lacks what the
    merchant's webhook and a lost one's refund need). A dispute with no PaymentIntent (a charge made without one)
    is not a charge this system made: ignored."""
    dispute = event.data_object
    connector_status = dispute.get("status")
    known = STAGE_AND_STATUS.get(connector_status) if isinstance(connector_status, str) else None
    if event.event_type not in DISPUTE_EVENTS or known is None or not dispute.get("payment_intent"):
        return DisputeEvent(event.event_id, event.event_type, None)
    dispute_id, intent_id, amount = dispute.get("id"), dispute.get("payment_intent"), dispute.get("amount")
    currency, reason = dispute.get("currency"), dispute.get("reason")
    if dispute.get("object") != "dispute" or not isinstance(dispute_id, str) or not dispute_id:
        raise EventRefused(RefusalKind.INVALID, f"{event.event_type} without a dispute in data.object")
    if not isinstance(intent_id, str):
        raise EventRefused(RefusalKind.INVALID, f"dispute {dispute_id}: payment_intent is not an id")
    if not is_int(amount) or amount < 1 or not isinstance(currency, str) or not currency:
        raise EventRefused(RefusalKind.INVALID, f"dispute {dispute_id}: no positive amount and currency")
    if event.created is None:
        raise EventRefused(RefusalKind.INVALID, f"event {event.event_id}: created is not a Unix time")
    stage, status = known
    report = DisputeReport(
        connector=STRIPE,
        connector_dispute_id=dispute_id,
        connector_transaction_id=intent_id,
        amount=amount,
        currency=currency.upper(),
        reason=reason if isinstance(reason, str) and reason else None,
        connector_status=str(connector_status),
        stage=stage,
        status=status,
        connector_created_at=unix_time(dispute.get("created")),
        told_at=event.created,
        challenge_required_by=_due_by(dispute.get("evidence_details")),
    )
    return DisputeEvent(event.event_id, event.event_type, report)


def _due_by(evidence_details: Any) -> datetime | None:
    """Stripe's deadline for the merchant's evidence, if the event gives one."""
    return unix_time(evidence_details.get("due_by")) if isinstance(evidence_details, dict) else None


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
