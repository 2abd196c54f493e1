"""The recovery intent as intake keeps it: one per invoice, and what each request and payment outcome does to it.

An invoice is a merchant's `merchant_reference_id`: its first request creates the intent (a Hyperswitch v2
payment, id `{cell}_pay_...`); later requests for it are folded in. Every transition returns the new intent and
the messages to emit; nothing here reads the clock or stores anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.disputes import ENDED_STATUSES, OPEN_STATUSES, DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import (
    CARD_DATA_BACKFILL,
    PaymentDisputeLost,
    PaymentDisputeUpdated,
    RecoveryScheduled,
    RecoveryUpdated,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, build_payment_object

from .payment_disputes import DisputeReport
from .recovery import merge_request
from .rejection import Rejection

# What an action makes of the intent (Hyperswitch's recovery actions; cancel_invoice is this system's addition).
ACTION_STATUS = {
    RecoveryAction.CANCEL_INVOICE: IntentStatus.CANCELLED,
    RecoveryAction.SUCCESS_PAYMENT_EXTERNAL: IntentStatus.SUCCEEDED,
    RecoveryAction.PENDING_PAYMENT: IntentStatus.PROCESSING,
}
# An invoice paid or cancelled stays so: later requests for it are recorded, never acted on.
FINAL = frozenset({IntentStatus.SUCCEEDED, IntentStatus.CANCELLED})
# What a payment outcome never overwrites: a success is final (a late failure never replaces it), and a failure
# does not reopen a cancelled invoice.
KEPT_AGAINST_OUTCOME = {
    IntentStatus.SUCCEEDED: frozenset({IntentStatus.SUCCEEDED}),
    IntentStatus.FAILED: frozenset({IntentStatus.SUCCEEDED, IntentStatus.CANCELLED}),
}
# How many later requests an intent keeps in its history by default (the latest; INTENT_REQUESTS_KEPT).
REQUESTS_KEPT = 50
_STAGE_ORDER = {DisputeStage.PRE_DISPUTE: 0, DisputeStage.DISPUTE: 1, DisputeStage.PRE_ARBITRATION: 2}


@dataclass(frozen=True)
class IntentRequest:
    """A later request for the invoice, as recorded in the intent's history."""

    at: datetime
    action: RecoveryAction
    connector_transaction_id: str | None


@dataclass(frozen=True)
class IntentDispute:
    """A dispute on the recovered payment, as the intent keeps it: where it stands (its latest stage and status,
    and when the connector told of them), `dispute_id` (ours, `dispute_id_for`), the amount disputed in minor
    units."""

    dispute_id: str
    connector_dispute_id: str
    amount: int
    currency: str
    reason: str | None
    stage: DisputeStage
    status: DisputeStatus
    told_at: datetime
    # By when the merchant must answer it at the connector, if the connector said.
    challenge_required_by: datetime | None
    # The statuses the merchant was told of (each once, in order): its webhooks are one per dispute and status.
    emitted: tuple[DisputeStatus, ...]

    def why_not_answered(self, *, with_evidence: bool) -> str | None:
        """Why the merchant's answer cannot be sent (None: it can): an ended dispute takes none, and evidence goes
        once (the connector reviews one submission)."""
        if self.status not in OPEN_STATUSES:
            return f"dispute {self.dispute_id} is {self.status.value}: an ended dispute takes no answer"
        if with_evidence and self.status is not DisputeStatus.DISPUTE_OPENED:
            return f"dispute {self.dispute_id} is {self.status.value}: evidence was given"
        return None


def dispute_progress(stage: DisputeStage, status: DisputeStatus) -> tuple[int, int, int]:
    """How far a dispute has come, to compare: an ending is past every open status; an open one is further at a
    later stage (an inquiry escalated to a dispute), then when challenged. Stripe may deliver its events in any
    order, so what a later event tells is taken only when it is further than what the intent keeps."""
    if status in ENDED_STATUSES:
        # A dispute's ending: nothing the connector tells of it afterwards changes it here.
        return (1, 0, 0)
    return (0, _STAGE_ORDER[stage], OPEN_STATUSES.index(status) if status in OPEN_STATUSES else 0)


@dataclass(frozen=True)
class IntentChange:
    """An intent after a transition, and the messages the transition emits."""

    intent: Intent
    messages: tuple[Envelope[Any], ...] = ()


@dataclass(frozen=True)
class Intent:
    snapshot: RecoveryPayment
    status: IntentStatus
    # The first request's action; later ones are in `requests` (the latest few: `rerequested`'s `keep`).
    action: RecoveryAction
    # Whether `recovery.scheduled` went out: the scheduler knows this recovery.
    scheduled: bool
    # Of the state transferred in `recovery.updated`; consumers apply only newer versions.
    version: int
    # The billing system's failed transactions seen so far: a known one sent again is not a new failure.
    billing_transactions: tuple[str, ...]
    created_at: datetime
    modified_at: datetime
    # The v2 payment object the latest payment outcome carried (JSON), if any.
    payment_object: dict[str, Any] | None = None
    requests: tuple[IntentRequest, ...] = ()
    # Disputes on the recovered payment, each once, where it stands.
    disputes: tuple[IntentDispute, ...] = ()

    @property
    def payment_id(self) -> str:
        return self.snapshot.payment_id

    @property
    def merchant_id(self) -> str:
        return self.snapshot.merchant_id

    @property
    def profile_id(self) -> str:
        return self.snapshot.profile_id

    @property
    def merchant_reference_id(self) -> str:
        return self.snapshot.merchant_reference_id

    @classmethod
    def requested(
        cls, snapshot: RecoveryPayment, action: RecoveryAction, now: datetime, *, cause: Envelope[Any] | None
    ) -> IntentChange:
        """The first request for an invoice. Hyperswitch answers a new recovery intent as `failed` (the invoice's
        charge failed; retries follow); `schedule_failed_payment` starts the recovery (`recovery.scheduled`)."""
        schedules = action is RecoveryAction.SCHEDULE_FAILED_PAYMENT
        intent = cls(
            snapshot=snapshot,
            status=ACTION_STATUS.get(action, IntentStatus.FAILED),
            action=action,
            scheduled=schedules,
            version=0,
            billing_transactions=known_transactions(snapshot),
            created_at=now,
            modified_at=now,
        )
        return IntentChange(intent, (_scheduled(snapshot, now, cause),) if schedules else ())

    def check_same_profile(self, profile_id: str) -> None:
        """An invoice's reference is unique within its merchant, and its recovery is the profile's that first asked
        for it: a request for it on another profile (two billing systems numbering invoices alike, or a caller's
        mistake) is refused, not folded into that recovery (its cards, amount, stop or cancel)."""
        if profile_id != self.profile_id:
            reference = self.snapshot.merchant_reference_id
            raise Rejection(
                ApiError.GENERIC_DUPLICATE,
                message=f"merchant_reference_id {reference!r} is the invoice of a recovery of another profile of "
                "this merchant: an invoice reference is unique within a merchant",
            )

    def rerequested(
        self,
        action: RecoveryAction,
        connector_transaction_id: str | None,
        incoming: RecoveryPayment,
        now: datetime,
        *,
        cause: Envelope[Any] | None,
        keep: int = REQUESTS_KEPT,
        by_merchant: bool = False,
    ) -> IntentChange:
        """A later request for the invoice (`incoming`: its snapshot as a new one), recorded and folded in; the
        scheduler and the executor hear of a change (`recovery.updated`). A paid or cancelled invoice is never
        reopened, and `no_action` changes nothing but the history, which keeps the latest `keep` requests.
        `by_merchant`: the merchant asked for `action` itself (a cancel by reference), not its billing system."""
        history = (*self.requests, IntentRequest(now, action, connector_transaction_id))
        recorded = replace(self, requests=history[-keep:] if keep > 0 else (), modified_at=now)
        if self.status in FINAL or action is RecoveryAction.NO_ACTION:
            return IntentChange(recorded)
        if action is RecoveryAction.SCHEDULE_FAILED_PAYMENT:
            return recorded._failed_again(incoming, connector_transaction_id, now, cause)
        status = ACTION_STATUS[action]
        acted = replace(recorded, status=status)
        if self.scheduled and self.status is not status:
            return acted._updated(self.snapshot, action, (), now, cause, by_merchant=by_merchant)
        return IntentChange(acted)

    def _failed_again(
        self,
        incoming: RecoveryPayment,
        connector_transaction_id: str | None,
        now: datetime,
        cause: Envelope[Any] | None,
    ) -> IntentChange:
        merged, added = merge_request(self.snapshot, incoming, self.billing_transactions)
        known = self.billing_transactions
        if connector_transaction_id and connector_transaction_id not in known:
            known = (*known, connector_transaction_id)
        changed = merged != self.snapshot or self.status is not IntentStatus.FAILED
        failed = replace(self, snapshot=merged, status=IntentStatus.FAILED, billing_transactions=known)
        if not self.scheduled:
            return IntentChange(replace(failed, scheduled=True), (_scheduled(merged, now, cause),))
        if changed:
            return failed._updated(merged, RecoveryAction.SCHEDULE_FAILED_PAYMENT, added, now, cause)
        return IntentChange(failed)

    def _updated(
        self,
        payment: RecoveryPayment,
        action: str,
        tokens_added: tuple[str, ...],
        now: datetime,
        cause: Envelope[Any] | None,
        *,
        by_merchant: bool = False,
    ) -> IntentChange:
        updated = replace(self, version=self.version + 1)
        message = envelope_for(
            MessageType.RECOVERY_UPDATED,
            RecoveryUpdated(
                payment=payment,
                action=str(action),
                intent_status=updated.status,
                version=updated.version,
                tokens_added=tokens_added,
                by_merchant=by_merchant,
            ),
            caused_by=cause,
            about=payment,
            occurred_at=now,
        )
        return IntentChange(updated, (message,))

    def card_data_backfilled(
        self, token: str, updated: PaymentToken, now: datetime, *, cause: Envelope[Any] | None = None
    ) -> IntentChange:
        """The merchant's backfill changed what is known of one saved card (`token`): the snapshot takes it and,
        for a recovery the scheduler runs, `recovery.updated` carries it (`CARD_DATA_BACKFILL`: the scheduler takes
        the card; a changed one lifts an earlier `fix` block, and a recovery that ended waiting for it plans again).
        A paid or cancelled invoice, a token the snapshot does not have, or data it already has: no change."""
        tokens = self.snapshot.tokens
        if self.status in FINAL or not any(t.token == token for t in tokens):
            return IntentChange(self)
        merged = self.snapshot.model_copy(update={"tokens": tuple(updated if t.token == token else t for t in tokens)})
        if merged == self.snapshot:
            return IntentChange(self)
        changed = replace(self, snapshot=merged, modified_at=now)
        if not self.scheduled:
            return IntentChange(changed)
        return changed._updated(merged, CARD_DATA_BACKFILL, (), now, cause)

    def closed_by(self, action: RecoveryAction) -> bool:
        """Whether a later request with `action` closes the open invoice (`rerequested`: cancelled, or paid
        elsewhere): the moment intake must know that no charge of it can follow (the payment's fence,
        docs/guarantees.md)."""
        return ACTION_STATUS.get(action) in FINAL and self.status not in FINAL

    def with_outcome(self, status: IntentStatus, payment_object: dict[str, Any], now: datetime) -> Intent | None:
        """The intent after a payment outcome (`payment.succeeded`, `payment.failed`), or None when it keeps
        its status (`KEPT_AGAINST_OUTCOME`)."""
        if self.status in KEPT_AGAINST_OUTCOME[status]:
            return None
        return replace(self, status=status, payment_object=payment_object, modified_at=now)

    def collected_by(self, connector_transaction_id: str) -> bool:
        """Whether this recovery collected the invoice's payment with that charge at the payment connector: it
        succeeded, and the payment object `payment.succeeded` carried names the charge (a payment recorded paid
        elsewhere, or another charge, is not one a dispute here can be on)."""
        if self.status is not IntentStatus.SUCCEEDED or not self.payment_object:
            return False
        return bool(self.payment_object.get("connector_transaction_id") == connector_transaction_id)

    def dispute_told(
        self,
        told: DisputeReport,
        *,
        attempt_id: str,
        merchant_connector_id: str,
        now: datetime,
        cause: Envelope[Any] | None = None,
    ) -> IntentChange:
        """The payment connector told of a dispute on the recovered payment: kept on the intent with where it
        stands, if that is further than what the intent keeps (`dispute_progress`; the same or an older status,
        whichever event brings it, changes nothing). A status the merchant was not told of yet emits one message
        for its webhook: `payment.dispute-lost` for a loss (the executor records a refund at the billing system
        too; its id is the dispute's), `payment.dispute-updated` for the others (its id the dispute's and the
        status's), so that consumers take each once whatever happens upstream; one told already (an inquiry
        escalated to a dispute opens again) is kept without one, as Hyperswitch's webhooks are one per dispute and
        status. The intent's status stays `succeeded`, as Hyperswitch keeps a disputed payment's: the dispute is its
        own object."""
        dispute_id = told.dispute_id(self.merchant_id)
        kept = next((d for d in self.disputes if d.dispute_id == dispute_id), None)
        if kept is not None and dispute_progress(told.stage, told.status) <= dispute_progress(kept.stage, kept.status):
            return IntentChange(self)
        emitted = kept.emitted if kept is not None else ()
        new_status = told.status not in emitted
        now_kept = IntentDispute(
            dispute_id,
            told.connector_dispute_id,
            told.amount,
            told.currency,
            told.reason,
            told.stage,
            told.status,
            told.told_at,
            told.challenge_required_by,
            (*emitted, told.status) if new_status else emitted,
        )
        # In the order the disputes were first told of: a dispute moving on keeps its place.
        disputes = tuple(now_kept if d is kept else d for d in self.disputes) if kept else (*self.disputes, now_kept)
        changed = replace(self, disputes=disputes, modified_at=now)
        if not new_status:
            return IntentChange(changed)
        dispute = DisputeObject(
            dispute_id=dispute_id,
            payment_id=self.payment_id,
            attempt_id=attempt_id,
            amount=str(told.amount),
            currency=told.currency,
            dispute_stage=told.stage,
            dispute_status=told.status,
            connector=told.connector,
            connector_status=told.connector_status,
            connector_dispute_id=told.connector_dispute_id,
            connector_reason=told.reason,
            challenge_required_by=told.challenge_required_by,
            connector_created_at=told.connector_created_at,
            # Stripe's dispute has no update time: its last change is the one the event tells of.
            connector_updated_at=told.told_at,
            created_at=now,
            profile_id=self.profile_id,
            merchant_connector_id=merchant_connector_id,
        )
        message = envelope_for(
            *_dispute_message(dispute, told),
            about=self.snapshot,
            caused_by=cause,
            message_id=dispute_id if told.status is DisputeStatus.DISPUTE_LOST else f"{dispute_id}:{told.status}",
            occurred_at=now,
        )
        return IntentChange(changed, (message,))

    def as_payment_object(self) -> dict[str, Any]:
        """The v2 payment object for `GET /v2/payments/{id}`: the latest one an outcome carried, else built now."""
        if self.payment_object:
            return self.payment_object
        built = build_payment_object(self.snapshot, status=self.status, modified_at=self.modified_at, attempt=None)
        return built.model_dump(mode="json")


def _dispute_message(
    dispute: DisputeObject, told: DisputeReport
) -> tuple[MessageType, PaymentDisputeLost | PaymentDisputeUpdated]:
    if told.status is DisputeStatus.DISPUTE_LOST:
        lost = PaymentDisputeLost(
            payment_id=dispute.payment_id,
            dispute=dispute,
            connector_transaction_id=told.connector_transaction_id,
            amount=told.amount,
            lost_at=told.told_at,
        )
        return MessageType.PAYMENT_DISPUTE_LOST, lost
    updated = PaymentDisputeUpdated(
        payment_id=dispute.payment_id,
        dispute=dispute,
        connector_transaction_id=told.connector_transaction_id,
        updated_at=told.told_at,
    )
    return MessageType.PAYMENT_DISPUTE_UPDATED, updated


def known_transactions(snapshot: RecoveryPayment) -> tuple[str, ...]:
    """The billing system's failed transactions a snapshot knows of (for an intent stored without the list)."""
    return (snapshot.failed_connector_transaction_id,) if snapshot.failed_connector_transaction_id else ()


def _scheduled(snapshot: RecoveryPayment, now: datetime, cause: Envelope[Any] | None) -> Envelope[RecoveryScheduled]:
    return envelope_for(
        MessageType.RECOVERY_SCHEDULED,
        RecoveryScheduled(payment=snapshot),
        caused_by=cause,
        about=snapshot,
        occurred_at=now,
    )
