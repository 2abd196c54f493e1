"""The recovery intent as intake keeps it: one per invoice, and what each request and payment outcome does to it.

An invoice is a merchant's `merchant_reference_id`: its first request creates the intent (a Hyperswitch v2
payment, id `{cell}_pay_...`); later requests for it are folded in. Every transition returns the new intent and
the messages to emit; nothing here reads the clock or stores anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import CARD_DATA_BACKFILL, PaymentDisputeLost, RecoveryScheduled, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, build_payment_object

from .payment_disputes import LostDispute
from .recovery import merge_request

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


@dataclass(frozen=True)
class IntentRequest:
    """A later request for the invoice, as recorded in the intent's history."""

    at: datetime
    action: RecoveryAction
    connector_transaction_id: str | None


@dataclass(frozen=True)
class IntentDispute:
    """A dispute the payment connector decided against the merchant on the recovered payment, as the intent keeps
    it (`dispute_id`: ours, `dispute_id_for`; the amount taken back in minor units)."""

    dispute_id: str
    connector_dispute_id: str
    amount: int
    currency: str
    reason: str | None
    lost_at: datetime


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
    # Disputes lost on the recovered payment (`dispute_lost`), each once.
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

    def cancelled_by(self, action: RecoveryAction) -> bool:
        """Whether a later request with `action` cancels the invoice (`rerequested`): the moment intake must know
        that no charge of it can follow (the payment's fence, docs/guarantees.md)."""
        return ACTION_STATUS.get(action) is IntentStatus.CANCELLED and self.status not in FINAL

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

    def dispute_lost(
        self,
        lost: LostDispute,
        *,
        attempt_id: str,
        merchant_connector_id: str,
        now: datetime,
        cause: Envelope[Any] | None = None,
    ) -> IntentChange:
        """The payment connector decided a dispute on the recovered payment against the merchant: kept on the
        intent, and `payment.dispute-lost` emitted (the executor records a refund at the billing system, the
        dispatcher tells the merchant). The same dispute again, whichever event brings it, changes nothing. The
        status stays `succeeded`, as Hyperswitch keeps a disputed payment's: the dispute is its own object. The
        message's id is the dispute's, so that consumers take it once whatever happens upstream."""
        dispute_id = lost.dispute_id(self.merchant_id)
        if any(kept.dispute_id == dispute_id for kept in self.disputes):
            return IntentChange(self)
        kept = IntentDispute(
            dispute_id, lost.connector_dispute_id, lost.amount, lost.currency, lost.reason, lost.lost_at
        )
        changed = replace(self, disputes=(*self.disputes, kept), modified_at=now)
        dispute = DisputeObject(
            dispute_id=dispute_id,
            payment_id=self.payment_id,
            attempt_id=attempt_id,
            amount=str(lost.amount),
            currency=lost.currency,
            dispute_stage=DisputeStage.DISPUTE,
            dispute_status=DisputeStatus.DISPUTE_LOST,
            connector=lost.connector,
            connector_status=lost.connector_status,
            connector_dispute_id=lost.connector_dispute_id,
            connector_reason=lost.reason,
            connector_created_at=lost.connector_created_at,
            # Stripe's dispute has no update time: its last change is the loss the event tells of.
            connector_updated_at=lost.lost_at,
            created_at=now,
            profile_id=self.profile_id,
            merchant_connector_id=merchant_connector_id,
        )
        message = envelope_for(
            MessageType.PAYMENT_DISPUTE_LOST,
            PaymentDisputeLost(
                payment_id=self.payment_id,
                dispute=dispute,
                connector_transaction_id=lost.connector_transaction_id,
                amount=lost.amount,
                lost_at=lost.lost_at,
            ),
            about=self.snapshot,
            caused_by=cause,
            message_id=dispute_id,
            occurred_at=now,
        )
        return IntentChange(changed, (message,))

    def as_payment_object(self) -> dict[str, Any]:
        """The v2 payment object for `GET /v2/payments/{id}`: the latest one an outcome carried, else built now."""
        if self.payment_object:
            return self.payment_object
        built = build_payment_object(self.snapshot, status=self.status, modified_at=self.modified_at, attempt=None)
        return built.model_dump(mode="json")


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
