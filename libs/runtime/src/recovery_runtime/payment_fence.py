"""The fence between a cancel and a charge of one payment: an accepted cancel and a charge sent to the connector
never both happen (docs/guarantees.md, "No charge after an accepted cancel").

One small record per payment that both sides change only by compare-and-set: the executor holds a *charge
lease* on it from right before its connector call until the attempt settles; intake's cancel leaves a
*tombstone* on it, only while no unexpired lease is held. A tombstone refuses every later lease, a held lease
refuses the cancel (intake answers 409: retry once the attempt settles), and a succeeded attempt marks the
record paid, which refuses both. The rule is here, pure; `PaymentFences` is the port both services use
(MongoDB: `recovery_runtime.adapters.payment_fences`, in memory: `recovery_runtime.testing`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class FenceVerdict(StrEnum):
    GRANTED = "granted"  # the lease is held (taken or renewed), or the cancel is accepted (now or before)
    CANCELLED = "cancelled"  # the payment's cancel was accepted: nothing may be charged any more
    CHARGING = "charging"  # an unexpired lease is held (for a lease: by another attempt of the payment)
    PAID = "paid"  # an attempt of the payment succeeded: there is nothing left to charge or to cancel


@dataclass(frozen=True)
class PaymentFence:
    """The fence record of one payment; `version` counts its writes (the compare-and-set's token, 0: none yet)."""

    payment_id: str
    version: int = 0
    cancelled_at: datetime | None = None
    holder: str | None = None  # the attempt (its key) holding the charge lease
    lease_until: datetime | None = None
    paid: bool = False

    def leased_at(self, now: datetime) -> bool:
        return self.holder is not None and self.lease_until is not None and self.lease_until > now

    def hold(self, holder: str, now: datetime, until: datetime) -> tuple[FenceVerdict, PaymentFence]:
        """The charge lease for `holder` until `until`: taken, or renewed when `holder` holds it already (a take-over
        of the same attempt re-sends the same idempotency key, so it cannot charge twice)."""
        if self.cancelled_at is not None:
            return FenceVerdict.CANCELLED, self
        if self.paid:
            return FenceVerdict.PAID, self
        if self.leased_at(now) and self.holder != holder:
            return FenceVerdict.CHARGING, self
        return FenceVerdict.GRANTED, replace(self, version=self.version + 1, holder=holder, lease_until=until)

    def cancel(self, now: datetime) -> tuple[FenceVerdict, PaymentFence]:
        """The tombstone, unless an attempt is being charged (an unexpired lease) or has succeeded."""
        if self.cancelled_at is not None:
            return FenceVerdict.GRANTED, self
        if self.paid:
            return FenceVerdict.PAID, self
        if self.leased_at(now):
            return FenceVerdict.CHARGING, self
        cancelled = replace(self, version=self.version + 1, cancelled_at=now, holder=None, lease_until=None)
        return FenceVerdict.GRANTED, cancelled

    def released(self, holder: str, *, paid: bool) -> tuple[FenceVerdict, PaymentFence]:
        """`holder`'s attempt settled: its lease (if it still holds it) ends; a success marks the payment paid."""
        held = self.holder == holder
        if not held and (self.paid or not paid):
            return FenceVerdict.GRANTED, self
        after = replace(self, version=self.version + 1, paid=self.paid or paid)
        return FenceVerdict.GRANTED, replace(after, holder=None, lease_until=None) if held else after


@dataclass(frozen=True)
class CancelAnswer:
    """A cancel's verdict, and for CHARGING when the lease held runs out at the latest (the moment a cancel that
    waits for it may be tried again, whether or not its holder settles first)."""

    verdict: FenceVerdict
    lease_until: datetime | None = None


class PaymentFences(Protocol):
    """The fence records (one per payment); every change is a compare-and-set of `PaymentFence`'s rule."""

    async def hold_for_charge(self, payment_id: str, holder: str, now: datetime, until: datetime) -> FenceVerdict:
        """Right before a connector call: GRANTED when `holder` may send its charge (the lease runs to `until`)."""
        ...

    async def release(self, payment_id: str, holder: str, *, paid: bool) -> None:
        """Once the attempt settled (or was refused): the lease ends; `paid` records a success."""
        ...

    async def cancel(self, payment_id: str, now: datetime) -> CancelAnswer:
        """GRANTED when the cancel may be accepted: from now on no lease is granted for the payment."""
        ...


# A change of the rule, applied to the record as loaded: the verdict, and the record to store (unchanged: none).
FenceDecision = Callable[[PaymentFence], tuple[FenceVerdict, PaymentFence]]


class RuledPaymentFences(ABC):
    """`PaymentFences` by the rule above, over a store that applies one decision atomically (`_change`)."""

    async def hold_for_charge(self, payment_id: str, holder: str, now: datetime, until: datetime) -> FenceVerdict:
        verdict, _ = await self._change(payment_id, lambda fence: fence.hold(holder, now, until))
        return verdict

    async def release(self, payment_id: str, holder: str, *, paid: bool) -> None:
        await self._change(payment_id, lambda fence: fence.released(holder, paid=paid))

    async def cancel(self, payment_id: str, now: datetime) -> CancelAnswer:
        verdict, fence = await self._change(payment_id, lambda fence: fence.cancel(now))
        return CancelAnswer(verdict, fence.lease_until if verdict is FenceVerdict.CHARGING else None)

    @abstractmethod
    async def _change(self, payment_id: str, decide: FenceDecision) -> tuple[FenceVerdict, PaymentFence]:
        """Apply `decide` to the payment's record as one compare-and-set; its verdict and the record it was
        decided on (as stored after it)."""
