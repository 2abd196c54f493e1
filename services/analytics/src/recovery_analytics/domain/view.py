"""A payment as the read side sees it: folded from the events that concern it, in any order they arrived.

`project(events)` is a pure function of the set of events: the same events give the same view whatever order
they were consumed in and however often each was delivered (duplicates are dropped by message id first). The
events are sorted by when they happened (`occurred_at`, then the kind's place in a recovery's life, then the
message id: `payment_events.in_order`), so a late `recovery.scheduled` still opens the story it belongs to. The
attempts' records are in `attempts`, what happens after the recovery (record back, disputes) in
`after_recovery`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from recovery_analytics.domain.after_recovery import (
    DisputeStep,
    LostDispute,
    RecordBackTry,
    by_number,
    current_disputes,
    dispute_state,
    dispute_step,
    lost_dispute,
    open_disputes,
    with_refund_records,
)
from recovery_analytics.domain.attempts import AttemptRecord, failed_attempt, succeeded_attempt, with_network
from recovery_analytics.domain.payment_events import in_order
from recovery_contracts.api.process_tracker import BusinessStatus
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    PaymentAttemptFailed,
    PaymentDisputeLost,
    PaymentDisputeUpdated,
    PaymentFailed,
    PaymentSucceeded,
    RecordBackUpdated,
    RecoveryScheduled,
    RecoveryShadowPlanned,
    RecoveryUpdated,
    ShadowPlan,
    WebhookDeliveryFailed,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment

# What a recovery answers with `intent_status` on `recovery.updated` when the billing system ended it.
_CLOSED_BY_BILLING = frozenset({IntentStatus.CANCELLED, IntentStatus.SUCCEEDED})


class ViewStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    RECOVERED = "recovered"
    FAILED = "failed"
    # Ended by the billing system (the invoice was cancelled or paid outside this system): neither recovered
    # nor failed, and left out of the recovery rate.
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class WebhookFailure:
    at: datetime
    event_id: str
    event_type: str
    reason: str
    attempts: int


@dataclass(frozen=True)
class ShadowStep:
    """A planning step of a recovery in monitoring: what each compared algorithm would have done then, and the
    one that takes over when the monitoring period ends."""

    at: datetime
    active_algorithm: str
    shadows: tuple[ShadowPlan, ...]


@dataclass(frozen=True)
class Ending:
    """How the recovery ended: when, and the reason the owner gave."""

    at: datetime
    reason: str
    business_status: str | None = None


@dataclass(frozen=True)
class PaymentView:
    payment_id: str
    merchant_id: str | None
    profile_id: str | None
    # The recovery snapshot (the latest `recovery.updated` version, else `recovery.scheduled`); None until one
    # arrived: a view without it shows its attempts but counts in no figure.
    payment: RecoveryPayment | None
    status: ViewStatus
    attempts: tuple[AttemptRecord, ...]
    recovered_at: datetime | None
    recovered_attempt: AttemptRecord | None
    ending: Ending | None
    webhook_failures: tuple[WebhookFailure, ...]
    updates: tuple[tuple[datetime, str], ...]
    last_event_at: datetime
    events: int
    # The record back's tries, by try number (the executor's `record-back.updated` without a `dispute_id`).
    record_back: tuple[RecordBackTry, ...] = ()
    # A monitoring recovery's shadow plans, step by step (the scheduler's `recovery.shadow-planned`).
    shadow_steps: tuple[ShadowStep, ...] = ()
    # Disputes lost on the payment, by when they were lost, each with its refund record's tries.
    disputes: tuple[LostDispute, ...] = ()
    # Refund record tries of a dispute whose `payment.dispute-lost` has not been folded yet (it may arrive late).
    unmatched_refund_records: tuple[tuple[str, RecordBackTry], ...] = ()
    # Each step of a dispute's course before its end (`payment.dispute-updated`), by when it happened.
    dispute_steps: tuple[DisputeStep, ...] = ()
    # Each dispute as it stands now, as the dispute list answers it (after_recovery.current_disputes).
    dispute_objects: tuple[DisputeObject, ...] = ()

    @property
    def open_disputes(self) -> tuple[DisputeStep, ...]:
        """Disputes on the payment that are open now (opened or challenged, not lost): their amounts are at risk."""
        return open_disputes(self.dispute_steps, self.disputes)

    @property
    def requested(self) -> bool:
        return self.payment is not None

    @property
    def record_back_state(self) -> str | None:
        """Where the record back stands after its last try (`RecordBackState`); None before any try."""
        return self.record_back[-1].state if self.record_back else None

    @property
    def dispute_state(self) -> str | None:
        """Where the payment's disputes stand, taken together (`DisputeState`: open, lost, ended); None without any."""
        state = dispute_state(self.dispute_steps, self.disputes)
        return state.value if state is not None else None

    @property
    def seconds_to_recover(self) -> float | None:
        if self.payment is None or self.recovered_at is None:
            return None
        return max(0.0, (self.recovered_at - self.payment.created_at).total_seconds())

    def card_network_of(self, token: str) -> str | None:
        if self.payment is None:
            return None
        return next((t.card_network for t in self.payment.tokens if t.token == token), None)

    @property
    def primary_card_network(self) -> str | None:
        return self.payment.tokens[0].card_network if self.payment is not None else None


def project(payment_id: str, events: Iterable[Envelope[Any]]) -> PaymentView:
    """The view of `payment_id` folded from its events (duplicates by message id count once)."""
    ordered = in_order(events)
    if not ordered:
        raise ValueError(f"no event of payment {payment_id}")
    payment: RecoveryPayment | None = None
    payment_version = -1
    attempts: dict[int, AttemptRecord] = {}
    failed: PaymentFailed | None = None
    failed_at: datetime | None = None
    succeeded: tuple[datetime, int] | None = None
    closed: Ending | None = None
    webhook_failures: list[WebhookFailure] = []
    updates: list[tuple[datetime, str]] = []
    record_back: dict[int, RecordBackTry] = {}
    disputes: dict[str, LostDispute] = {}
    refund_records: dict[str, dict[int, RecordBackTry]] = {}
    shadow_steps: list[ShadowStep] = []
    dispute_steps: list[DisputeStep] = []
    told: list[tuple[datetime, DisputeObject]] = []
    merchant_id = profile_id = None
    for envelope in ordered:
        merchant_id = merchant_id or envelope.merchant_id
        profile_id = profile_id or envelope.profile_id
        body = envelope.payload
        if isinstance(body, RecoveryScheduled):
            # Version 0: any `recovery.updated` snapshot is newer than the first one.
            if payment_version < 0:
                payment, payment_version = body.payment, 0
        elif isinstance(body, RecoveryUpdated):
            if body.version > payment_version:
                payment, payment_version = body.payment, body.version
            updates.append((envelope.occurred_at, body.action))
            if body.intent_status in _CLOSED_BY_BILLING and closed is None:
                closed = _closed(envelope.occurred_at, body)
        elif isinstance(body, PaymentAttemptFailed):
            attempts.setdefault(body.attempt_number, failed_attempt(body))
        elif isinstance(body, PaymentSucceeded):
            # Money moved: a success is the truth even over a failure reported for the same attempt (a PSYNC).
            attempts[body.attempt_number] = succeeded_attempt(body)
            if succeeded is None or body.succeeded_at < succeeded[0]:
                succeeded = (body.succeeded_at, body.attempt_number)
        elif isinstance(body, PaymentFailed):
            failed, failed_at = body, envelope.occurred_at
        elif isinstance(body, WebhookDeliveryFailed):
            webhook_failures.append(
                WebhookFailure(body.failed_at, body.event_id, body.event_type, body.reason, body.attempts)
            )
        elif isinstance(body, RecordBackUpdated):
            # One event per try; should a try be reported twice (a redelivered command tried again before its
            # first report committed), the later report of it (in the sort order) stands. A lost dispute's refund
            # record is a record of its own, numbered from 1: never the payment's record back.
            tries = record_back if body.dispute_id is None else refund_records.setdefault(body.dispute_id, {})
            tries[body.attempt] = RecordBackTry(
                body.attempt, body.at, body.billing_connector, body.state.value, body.status_code, body.error
            )
        elif isinstance(body, PaymentDisputeLost):
            # Once per dispute, whatever message ids it came under.
            disputes.setdefault(body.dispute.dispute_id, lost_dispute(body))
            told.append((body.lost_at, body.dispute))
        elif isinstance(body, PaymentDisputeUpdated):
            dispute_steps.append(dispute_step(body))
            told.append((body.updated_at, body.dispute))
        elif isinstance(body, RecoveryShadowPlanned):
            shadow_steps.append(ShadowStep(body.at, body.active_algorithm.value, body.shadows))
    if payment is not None:
        merchant_id, profile_id = payment.merchant_id, payment.profile_id
        networks = {t.token: t.card_network for t in payment.tokens}
        attempts = {n: with_network(a, networks.get(a.token)) for n, a in attempts.items()}
    recovered_attempt = attempts[succeeded[1]] if succeeded is not None else None
    ending: Ending | None = None
    if succeeded is not None:
        status = ViewStatus.RECOVERED
        ending = Ending(succeeded[0], f"recovered by attempt {succeeded[1]}", "COMPLETED_EXECUTE_TASK")
    elif failed is not None and failed_at is not None:
        status = ViewStatus.FAILED
        ending = Ending(failed_at, failed.reason, failed.business_status)
    elif closed is not None:
        status, ending = ViewStatus.CANCELLED, closed
    else:
        status = ViewStatus.IN_PROGRESS
    lost, unmatched = with_refund_records(disputes, refund_records)
    return PaymentView(
        payment_id=payment_id,
        merchant_id=merchant_id,
        profile_id=profile_id,
        payment=payment,
        status=status,
        attempts=tuple(attempts[n] for n in sorted(attempts)),
        recovered_at=succeeded[0] if succeeded is not None else None,
        recovered_attempt=recovered_attempt,
        ending=ending,
        webhook_failures=tuple(webhook_failures),
        updates=tuple(updates),
        last_event_at=max(e.occurred_at for e in ordered),
        events=len(ordered),
        record_back=by_number(record_back),
        shadow_steps=tuple(shadow_steps),
        disputes=lost,
        unmatched_refund_records=unmatched,
        dispute_steps=tuple(dispute_steps),
        dispute_objects=current_disputes(told),
    )


def _closed(at: datetime, update: RecoveryUpdated) -> Ending:
    """How an update that closed the intent ended the recovery: the reason and the process tracker's business
    status (the scheduler's, docs/retry-engine.md)."""
    if update.intent_status is IntentStatus.SUCCEEDED:
        return Ending(at, update.action, BusinessStatus.COMPLETED_BY_EXTERNAL_PAYMENT.value)
    if update.by_merchant:
        return Ending(at, "cancelled by the merchant", BusinessStatus.CANCELLED_BY_MERCHANT.value)
    return Ending(at, update.action, BusinessStatus.CANCELLED_BY_BILLING_CONNECTOR.value)
