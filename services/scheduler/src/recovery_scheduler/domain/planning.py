"""What a recovery's transitions take from outside (time, randomness, ids, budgets) and what they give back."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.recovery import RecoveryPayment

from .budget_writes import BudgetWrites, budget_writes
from .card_budgets import CardBudget
from .learned_hours import LearnedHours
from .timers import Timer

if TYPE_CHECKING:
    from .recovery import Recovery

# How long a recovery lasts at most, whatever it waits for (business time since its payment was created), unless
# the scheduler is told otherwise (RECOVERY_HORIZON_SECONDS).
DEFAULT_HORIZON = timedelta(days=60)


class Ids(Protocol):
    """New ids for what a plan creates (time-ordered ids read the clock: they come from outside)."""

    def attempt_id(self) -> str: ...

    def message_id(self) -> str: ...


@dataclass(frozen=True)
class Planning:
    """Everything a transition that may plan needs from outside the recovery."""

    now: datetime
    rng: random.Random
    ids: Ids
    # Business seconds per wall-clock second (TIME_SCALE): a planned business time becomes a timer's due time.
    time_scale: float = 1.0
    # The merchant's budget on each of the payment's cards (by token), as read before planning: the other
    # recoveries' reservations count, and a planned attempt reserves its slot on it (compare-and-set on the version
    # read). None: not looked up (a transition that plans then refuses).
    card_budgets: Mapping[str, CardBudget] | None = None
    # The message being applied: what the plan sends carries it as its cause.
    cause: Envelope[Any] | None = None
    # A recovery ends this long (business time) after its payment was created, whatever it waits for.
    horizon: timedelta = DEFAULT_HORIZON
    # The merchant's learned hours (its retry statistics), which smart reads. None: not looked up, or switched off.
    learned: LearnedHours | None = None

    def budgets(self) -> Mapping[str, CardBudget]:
        if self.card_budgets is None:
            raise ValueError("planning needs the merchant's budgets on the payment's cards")
        return self.card_budgets

    def elapsed(self, since: datetime, business: timedelta) -> datetime:
        """The wall-clock time at which `business` time has passed since `since` under the time scale."""
        return since + business / self.time_scale

    def horizon_at(self, recovery: Recovery) -> datetime:
        """When the recovery reaches its horizon (wall clock)."""
        return self.elapsed(recovery.payment.created_at, self.horizon)

    def wall_time(self, business_at: datetime) -> datetime:
        """A planned business time as the wall-clock due time under the time scale."""
        if business_at <= self.now:
            return self.now
        return self.now + (business_at - self.now) / self.time_scale

    def message(self, message_type: MessageType, payload: Any, payment: RecoveryPayment) -> Envelope[Any]:
        return envelope_for(
            message_type,
            payload,
            caused_by=self.cause,
            about=payment,
            message_id=self.ids.message_id(),
            occurred_at=self.now,
        )


@dataclass(frozen=True)
class Change:
    """A transition's result: the recovery after it, the timers to store, whether the recovery's planned timers
    still pending are cancelled (before the new ones are stored), and the messages to send."""

    before: Recovery | None  # None: a recovery that is not stored yet
    recovery: Recovery
    timers: tuple[Timer, ...] = ()
    cancels_planned_timers: bool = False
    messages: tuple[Envelope[Any], ...] = ()
    # An attempt the executor refused, nothing sent (its card's token, its number and its attempt id): its slot is
    # given back although its timer fired (`budget_writes`).
    refused: tuple[str, int, str] | None = None

    @property
    def is_new(self) -> bool:
        return self.before is None

    @property
    def changed(self) -> bool:
        return self.before is not self.recovery

    def budget_writes(self, planning: Planning | None, now: datetime) -> BudgetWrites:
        """The reservation a newly planned attempt takes and the slots given back (`budget_writes.budget_writes`)."""
        return budget_writes(self, planning.card_budgets if planning is not None else None, now)
