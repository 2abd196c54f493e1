"""What a recovery's transitions take from outside (time, randomness, ids, budgets) and what they give back."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.recovery import RecoveryPayment

from .timers import Timer

if TYPE_CHECKING:
    from .recovery import Recovery

# How far back other recoveries' attempts on the same cards count: the longest network-budget window (rolling
# 30 days) and a day's margin.
BUDGET_LOOKBACK = timedelta(days=31)


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
    # Attempts of other recoveries on the same cards since now - BUDGET_LOOKBACK, by token: they spend the same
    # network budgets. None: not looked up (a transition that plans then refuses).
    other_attempts_at: Mapping[str, Sequence[datetime]] | None = None
    # The message being applied: what the plan sends carries it as its cause.
    cause: Envelope[Any] | None = None

    def budgets_spent(self) -> Mapping[str, Sequence[datetime]]:
        if self.other_attempts_at is None:
            raise ValueError("planning needs the attempts other recoveries made on the same cards")
        return self.other_attempts_at

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
            correlation_id=payment.payment_id,
            merchant_id=payment.merchant_id,
            profile_id=payment.profile_id,
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

    @property
    def is_new(self) -> bool:
        return self.before is None

    @property
    def changed(self) -> bool:
        return self.before is not self.recovery
