"""Durable timers as the scheduler plans them: what fires when, and the rules for their ids and purposes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import ScheduleTimer, read_message


class TimerKind(StrEnum):
    MESSAGE = "message"  # publish the stored message when due
    REPLAN = "replan"  # run the retry planner for the payment again when due


class TimerStatus(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    FIRED = "fired"
    CANCELLED = "cancelled"


class TimerPurpose(StrEnum):
    """Purposes of the timers the scheduler plans itself; other services name their own (`timer.schedule`)."""

    EXECUTE_RETRY = "execute_retry"
    REPLAN = "replan"
    # The executor's PSYNC timers (`timer.schedule` with a `payment.sync` command inside).
    PAYMENT_SYNC = "payment_sync"
    # The executor's record-back tries after the first (`timer.schedule` with a `billing.record-back` inside).
    RECORD_BACK = "record_back"


# What Hyperswitch's PSYNC task does here: settle an attempt whose outcome is unknown, and record a success back.
PSYNC_PURPOSES = (TimerPurpose.PAYMENT_SYNC.value, TimerPurpose.RECORD_BACK.value)


# Purposes that belong to the recovery's plan (cancelled when it ends or pauses). PSYNC and record-back timers
# stay: an attempt whose outcome is unknown must still be settled, and a success must still be recorded back.
PLANNED_WORK = frozenset({TimerPurpose.EXECUTE_RETRY.value, TimerPurpose.REPLAN.value})


@dataclass(frozen=True)
class Timer:
    """A timer to store: at `due_at` (wall clock) publish `message`, or re-plan `payment_id` (`kind` replan)."""

    timer_id: str
    kind: TimerKind
    due_at: datetime
    payment_id: str | None
    purpose: str
    created_at: datetime
    message: Envelope[Any] | None = None
    # The message as the requester sent it (its JSON), published as is: read tolerantly (`read_message`), a field
    # this release does not know is checked by no one here and still reaches the consumer of a newer release.
    body: bytes | None = None

    @classmethod
    def requested(cls, request: ScheduleTimer, now: datetime) -> Timer:
        """The timer another service asks for (`timer.schedule`); ValueError if its message is not an envelope."""
        raw = request.message
        try:
            message_type = MessageType(str(raw.get("type")))
        except ValueError as error:
            raise ValueError(f"unknown message type {raw.get('type')!r}") from error
        message = read_message(message_type, raw)
        return cls(
            request.timer_id,
            TimerKind.MESSAGE,
            request.due_at,
            request.payment_id,
            request.kind,
            now,
            message,
            body=json.dumps(raw, separators=(",", ":")).encode(),
        )


def attempt_timer_id(payment_id: str, attempt_number: int, version: int, planned_before: bool) -> str:
    """One timer per planned attempt. An attempt number planned again (its command was refused by the executor
    while the recovery was paused, or its plan was stopped) gets an id of its own, from the recovery's next
    version: the executor lets a new attempt id reuse the number."""
    timer_id = f"execute:{payment_id}:{attempt_number}"
    return f"{timer_id}:r{version + 1}" if planned_before else timer_id


def replan_timer_id(payment_id: str, version: int) -> str:
    """The re-plan timer of the plan written at the recovery's next version: one per version, never reused."""
    return f"replan:{payment_id}:{version + 1}"


def card_check_timer(payment_id: str, token: str, found_by: str, now: datetime) -> Timer:
    """Plan recovery `payment_id` again at once: recovery `found_by` of the same merchant met a `never` decline on
    `token`, on which `payment_id` has an attempt planned (or the merchant marked the card: `found_by` names the
    mark). One per recovery, card and finder (a copy of the finder's message stores nothing more)."""
    return Timer(
        f"replan:{payment_id}:card:{found_by}:{token}",
        TimerKind.REPLAN,
        now,
        payment_id,
        TimerPurpose.REPLAN.value,
        now,
    )
