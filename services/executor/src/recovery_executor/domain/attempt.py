"""One planned attempt at the executor: claimed before the connector call, then settled, refused or left to PSYNC.

The attempt record is what makes a charge happen once: it is written before any connector call, every later
step is a compare-and-set on it, and every call it makes reaches the connector with the same idempotency key and
exactly the same parameters, the ones recorded when it was claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import ExecuteRetry
from recovery_runtime.clock import TimeScale

from .billing_systems import records_back
from .connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from .follow_up import psync_delay
from .messages import outcome_message, psync_timer, record_back_command, refusal_message

# Stripe keeps an idempotency key for 24 hours; a replay later than this could charge a second time.
IDEMPOTENCY_WINDOW = timedelta(hours=23)


class AttemptStatus(StrEnum):
    CHARGING = "charging"  # a connector call is in flight, by `owner`
    UNKNOWN = "unknown"  # the call ended without a verdict: PSYNC before anything else
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    ERROR = "error"
    SKIPPED = "skipped"  # refused before any connector call: the invoice may no longer be charged


SETTLED = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED, AttemptStatus.ERROR})


class Resumption(StrEnum):
    """What a command (EXECUTE or PSYNC) does with an attempt someone already claimed."""

    REPUBLISH = "republish"  # finished: publish its outcome again (a copy of the message may have been lost)
    REOPEN = "reopen"  # refused under another attempt id, planned again (a paused recovery resumed)
    LEAVE = "leave"  # nothing to do: PSYNC owns it, or it is the refused command itself again
    HELD = "held"  # another executor is charging it right now: look again after a pause
    TAKE_OVER = "take_over"  # abandoned mid-call, or its outcome unknown: sync it, never charge blind


def attempt_key(payment_id: str, attempt_number: int) -> str:
    return f"{payment_id}:{attempt_number}"


def idempotency_key(payment_id: str, attempt_number: int) -> str:
    # Deterministic per planned attempt: any replay of this attempt reaches the connector with the same key.
    return f"recovery:{payment_id}:attempt:{attempt_number}"


def charge_request(command: ExecuteRetry) -> ChargeRequest:
    payment = command.payment
    return ChargeRequest(
        payment_id=payment.payment_id,
        attempt_number=command.attempt_number,
        amount=payment.amount,
        currency=payment.currency,
        customer=command.token.connector_customer_id or payment.connector_customer_id,
        payment_method=command.token.token,
        idempotency_key=idempotency_key(payment.payment_id, command.attempt_number),
        metadata={
            "payment_id": payment.payment_id,
            "attempt_id": command.attempt_id,
            "merchant_reference_id": payment.merchant_reference_id,
        },
    )


@dataclass(frozen=True)
class Attempt:
    """The executor's record of one planned attempt (`key`: payment id and attempt number)."""

    key: str
    payment_id: str
    attempt_number: int
    attempt_id: str
    status: AttemptStatus
    first_started_at: datetime
    started_at: datetime
    owner: str  # the executor instance holding it while `charging`
    command_message_id: str  # the EXECUTE that claimed it: its inbox record
    # The connector call's exact parameters, fixed at the claim: a redelivered command, a take-over, a PSYNC and
    # its re-send all send these again with the same key, never parameters built anew from a later payment
    # snapshot (the connector would refuse them, or charge what the first call did not).
    charge: ChargeRequest
    resumptions: int = 0
    next_sync_at: datetime | None = None
    connector_transaction_id: str | None = None
    settled_at: datetime | None = None
    decline_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    skip_reason: str | None = None
    # The outcome message it emitted when settled, published again for any later copy of its command.
    outcome_message: Envelope[Any] | None = None

    @classmethod
    def claim(cls, command: ExecuteRetry, message_id: str, owner: str, now: datetime) -> Attempt:
        payment_id, number = command.payment.payment_id, command.attempt_number
        return cls(
            key=attempt_key(payment_id, number),
            payment_id=payment_id,
            attempt_number=number,
            attempt_id=command.attempt_id,
            status=AttemptStatus.CHARGING,
            first_started_at=now,
            started_at=now,
            owner=owner,
            command_message_id=message_id,
            charge=charge_request(command),
        )

    @property
    def token(self) -> str:
        return self.charge.payment_method

    @property
    def idempotency_key(self) -> str:
        return self.charge.idempotency_key

    @property
    def is_finished(self) -> bool:
        return self.status in SETTLED or self.status is AttemptStatus.SKIPPED

    def on_execute(self, attempt_id: str, now: datetime, abandoned_after: timedelta) -> Resumption:
        """A copy of an EXECUTE command (or the same attempt number planned again) found this record."""
        if self.status in SETTLED:
            return Resumption.REPUBLISH
        if self.status is AttemptStatus.SKIPPED:
            # A copy of the refused command itself stays refused.
            return Resumption.REOPEN if attempt_id != self.attempt_id else Resumption.LEAVE
        if self.status is AttemptStatus.UNKNOWN:
            return Resumption.LEAVE
        return Resumption.TAKE_OVER if now >= self.abandoned_at(abandoned_after) else Resumption.HELD

    def abandoned_at(self, abandoned_after: timedelta) -> datetime:
        """When an executor holding this attempt since `started_at` counts as having abandoned it."""
        return self.started_at + abandoned_after

    def on_sync(self, now: datetime, abandoned_after: timedelta) -> Resumption:
        """A PSYNC timer fired for this record."""
        if self.is_finished:
            return Resumption.REPUBLISH
        if self.status is AttemptStatus.CHARGING and now < self.abandoned_at(abandoned_after):
            # Another executor holds it right now and settles or watches it. Looked at again after a pause, at the
            # latest once it may have abandoned it, and taken over then (ABANDONED_ATTEMPT_SECONDS is bounded so
            # that the redeliveries' pauses outlast it before the delivery limit).
            return Resumption.HELD
        return Resumption.TAKE_OVER

    def idempotency_expired(self, now: datetime) -> bool:
        """Past the connector's idempotency window a re-sent call could charge a second time."""
        return now - self.first_started_at >= IDEMPOTENCY_WINDOW

    # -- transitions: each returns the new state; the repository saves it by compare-and-set ---------------

    def taken_over(self, owner: str, now: datetime) -> Attempt:
        return replace(
            self, status=AttemptStatus.CHARGING, started_at=now, owner=owner, resumptions=self.resumptions + 1
        )

    def reopened(self, command: ExecuteRetry, owner: str, now: datetime) -> Attempt:
        """Refused, then planned again by `command` (a new attempt id): claimed anew, with the new plan's
        parameters. It was settled as not charged (refused before any call, or after syncs that found nothing);
        should a lost call under the key have reached the connector after all, the connector answers the new
        parameters with an idempotency error: an unknown outcome, which PSYNC settles."""
        return replace(
            self,
            status=AttemptStatus.CHARGING,
            attempt_id=command.attempt_id,
            started_at=now,
            owner=owner,
            charge=charge_request(command),
        )

    def refused(
        self, reason: str, command: ExecuteRetry, cause: str, now: datetime
    ) -> tuple[Attempt, list[Envelope[Any]]]:
        """Nothing was (or will be) sent to the connector: the invoice may no longer be charged. The refusal is
        told (`payment.attempt-refused`), so that the recovery does not wait for an outcome."""
        refused = replace(self, status=AttemptStatus.SKIPPED, settled_at=now, skip_reason=reason)
        return refused, [refusal_message(command, cause, reason, now)]

    def outcome_unknown(
        self,
        outcome: ChargeOutcome,
        command: ExecuteRetry,
        consumed: Envelope[Any],
        cause: str,
        sync_number: int,
        now: datetime,
        time_scale: TimeScale,
    ) -> tuple[Attempt, list[Envelope[Any]]]:
        """Timeout, 5xx, a key in flight or first used with other parameters, `processing`: the charge may have
        happened. PSYNC owns the attempt from now on; a durable timer (the scheduler's) brings it back for sync
        number `sync_number`."""
        due = now + time_scale.wall(psync_delay(sync_number))
        unknown = replace(
            self,
            status=AttemptStatus.UNKNOWN,
            next_sync_at=due,
            connector_transaction_id=outcome.connector_transaction_id or self.connector_transaction_id,
        )
        return unknown, [psync_timer(self.key, command, consumed, cause, sync_number, due)]

    def settled(
        self, outcome: ChargeOutcome, command: ExecuteRetry, cause: str, now: datetime
    ) -> tuple[Attempt, list[Envelope[Any]]]:
        """A final outcome: the attempt records it and emits it (and, after a success, the record back)."""
        message = outcome_message(command, cause, outcome, now)
        messages = [message]
        if outcome.kind is ChargeOutcomeKind.SUCCEEDED and records_back(command.payment):
            messages.append(record_back_command(command, outcome, cause))
        settled = replace(
            self,
            status=_status_of(outcome),
            settled_at=now,
            connector_transaction_id=outcome.connector_transaction_id,
            decline_code=outcome.decline_code,
            error_code=outcome.error_code,
            error_message=outcome.message,
            outcome_message=message,
        )
        return settled, messages


def _status_of(outcome: ChargeOutcome) -> AttemptStatus:
    if outcome.kind is ChargeOutcomeKind.SUCCEEDED:
        return AttemptStatus.SUCCEEDED
    if outcome.kind is ChargeOutcomeKind.DECLINED:
        return AttemptStatus.DECLINED
    return AttemptStatus.ERROR
