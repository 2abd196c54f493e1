"""Recording a successful retry back to the billing connector: tried on durable timers (`RECORD_BACK_DELAYS`) until
it is accepted (2xx, or the billing system's "already paid"), refused for good (`blocked` by the egress policy), or
abandoned for an operator after `RECORD_BACK_MAX_TRIES` tries. An operator starts an abandoned or blocked record
back again (`RecordBackProgress.restart`): a new round of tries, the same idempotency key, nothing charged.

Every try is kept with the payment's record back (what it asked, when, the HTTP status or the error, and where the
record back stood after it), so an operator sees the record back and its tries on the payment's timeline.

A dispute lost on the payment is recorded the same way as a record of its own beside the payment's (a refund:
`RecordBack.dispute`, domain/dispute_refunds.py), under its own key, idempotency key and timers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import RecordBack, RecordBackState
from recovery_runtime.clock import TimeScale

from .follow_up import record_back_delay
from .messages import record_back_restarted, record_back_retry, record_back_updated
from .ports import RecordBackAnswer


def record_back_key(payment_id: str, dispute_id: str | None = None) -> str:
    """The id of a record: the payment's own record back under the payment id, the refund of a dispute lost on it
    beside it (one per dispute)."""
    return payment_id if dispute_id is None else f"{payment_id}:dispute:{dispute_id}"


def record_key_of(request: RecordBack) -> str:
    """The record a record-back command tries: the payment's, or the refund of its `dispute`."""
    return record_back_key(request.payment_id, request.dispute.dispute_id if request.dispute else None)


def record_back_idempotency_key(key: str) -> str:
    # The same key on every try of one record (`record_back_key`): a billing system that de-duplicates records one
    # payment, or one lost dispute, once.
    return f"record-back:{key}"


# A record back's status is the contract's state (`record-back.updated` carries it).
RecordBackStatus = RecordBackState

# The billing system a record back without `billing_connector` goes to: the merchant's `record_back_url`.
CUSTOMBILLING = "custombilling"


@dataclass(frozen=True)
class RecordBackTry:
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    # Where the record back stood after this try (None: a try recorded before tries kept it).
    outcome: RecordBackStatus | None = None


@dataclass(frozen=True)
class RecordBackProgress:
    """One payment's record back, or the refund of a dispute lost on it (`dispute_id`): where it goes, how many
    tries so far, and whether one was accepted."""

    payment_id: str
    status: RecordBackStatus
    url: str
    attempts: int
    updated_at: datetime
    # Whose payment (reads are scoped to it) and which billing system it is recorded at.
    merchant_id: str | None = None
    billing_connector: str = CUSTOMBILLING
    # The last try's request and the payment's profile: what a restart sends again (None: stored before 4 Dec).
    request: RecordBack | None = None
    profile_id: str | None = None
    # Set: the refund of this dispute, lost on the payment (None: the payment's own record back).
    dispute_id: str | None = None
    # The billing system's transaction the accepted try made (Chargebee's payment, or its refund; Stripe Billing's
    # credit note of a lost dispute): what a refund of the payment names. None: not accepted yet, no such id (the
    # payment's record at Stripe Billing or Recurly, custombilling), or none in the answer.
    billing_transaction_id: str | None = None

    @property
    def key(self) -> str:
        return record_back_key(self.payment_id, self.dispute_id)

    @staticmethod
    def after_try(
        consumed: Envelope[RecordBack], answer: RecordBackAnswer, now: datetime, time_scale: TimeScale
    ) -> tuple[RecordBackProgress, RecordBackTry, list[Envelope[Any]]]:
        """The progress after the try `consumed` asked for, the try itself, and the messages to emit with it: the
        `record-back.updated` event (the read side's timeline) and the next try's timer if any."""
        request = consumed.payload
        tries_this_round = request.attempt - request.round_start + 1
        delay = None if answer.accepted or answer.blocked else record_back_delay(tries_this_round)
        if answer.accepted:
            status = RecordBackStatus.ACCEPTED
        elif answer.blocked:
            status = RecordBackStatus.BLOCKED
        elif delay is None:
            status = RecordBackStatus.ABANDONED
        else:
            status = RecordBackStatus.RETRYING
        progress = RecordBackProgress(
            request.payment_id,
            status,
            request.url,
            request.attempt,
            now,
            merchant_id=consumed.merchant_id,
            billing_connector=request.billing_connector or CUSTOMBILLING,
            request=request,
            profile_id=consumed.profile_id,
            dispute_id=request.dispute.dispute_id if request.dispute else None,
            billing_transaction_id=answer.transaction_id if answer.accepted else None,
        )
        tried = RecordBackTry(request.attempt, now, answer.status_code, answer.error, status)
        emitted: list[Envelope[Any]] = [record_back_updated(consumed, progress, tried)]
        if delay is not None:
            emitted.append(record_back_retry(consumed, progress.key, now + time_scale.wall(delay)))
        return progress, tried, emitted

    def restart(
        self, now: datetime, at: datetime, time_scale: TimeScale
    ) -> tuple[RecordBackProgress, Envelope[Any]] | str:
        """An operator starts the record back again: the progress (`retrying`, until the next try says otherwise)
        and the first try of the new round, at `at` (business time; now if it has passed); or why it cannot be
        started again. Only an abandoned or a blocked record back is (after the billing system or the egress
        allow-list was put right): an accepted one is done, a retrying one has its next try on a timer."""
        if self.status is RecordBackStatus.ACCEPTED:
            return "the record back was accepted: nothing is left to record"
        if self.status is RecordBackStatus.RETRYING and self.attempts == 0:
            return "the record back's first try is on its way"
        if self.status is RecordBackStatus.RETRYING:
            return f"the record back is being retried (try {self.attempts} was refused; the next one is on a timer)"
        if self.request is None:
            return "this record back was stored before it could be started again: record the payment by hand"
        first = self.attempts + 1
        again = self.request.model_copy(update={"attempt": first, "round_start": first})
        due = None if at <= now else now + time_scale.wall(at - now)
        message = record_back_restarted(again, self.key, self.merchant_id, self.profile_id, now, due)
        return replace(self, status=RecordBackStatus.RETRYING, updated_at=now), message


@dataclass(frozen=True)
class RecordBackHistory:
    """A payment's record back as an operator reads it: where it stands, and every try, oldest first."""

    progress: RecordBackProgress
    tries: tuple[RecordBackTry, ...]
