"""What every executor handler is given: the storage ports (MongoDB in adapters/, in memory in the unit tests),
the adapters, and the one bundle of dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Protocol

from recovery_contracts.messages import ConnectorAccountUpdated, RecoveryUpdated
from recovery_executor.domain.attempt import Attempt
from recovery_executor.domain.charge_guard import ChargeFacts
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_executor.domain.ports import BillingRecorder, BillingSystemRecorder, PaymentConnector
from recovery_executor.domain.record_back import RecordBackHistory, RecordBackProgress, RecordBackTry
from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.payment_fence import PaymentFences
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort


class AttemptRepository(Protocol):
    """Attempt records; every save after the claim is a compare-and-set that returns whether it won."""

    async def claim(self, attempt: Attempt) -> Attempt | None:
        """Record a new attempt: None when it is new, else the attempt already recorded under its key."""
        ...

    async def get(self, key: str) -> Attempt | None: ...

    async def take_over(self, previous: Attempt, taken: Attempt) -> bool:
        """`taken`, if the record still started at `previous.started_at` (charging or unknown)."""
        ...

    async def reopen(self, reopened: Attempt) -> bool:
        """`reopened`, if the record is still refused under another attempt id."""
        ...

    # While this executor holds the attempt (charging, its owner):
    async def save_unknown(self, attempt: Attempt, tx: Transaction) -> bool: ...

    async def save_refused(self, attempt: Attempt, tx: Transaction) -> bool: ...

    async def save_settled(self, attempt: Attempt, tx: Transaction) -> bool:
        """With the messages emitted in `tx` embedded in the same write (`Transaction.embed`)."""
        ...


class PaymentStateRepository(Protocol):
    async def apply(self, update: RecoveryUpdated, now: datetime, tx: Transaction) -> bool: ...

    async def charge_facts(self, payment_id: str) -> ChargeFacts: ...


class ConnectorAccountRepository(Protocol):
    async def apply(self, update: ConnectorAccountUpdated, tx: Transaction) -> bool: ...

    async def get(self, connector_account_id: str) -> ConnectorAccount | None: ...


class RecordBackRepository(Protocol):
    """Records by key (`record_back_key`): a payment's record back under its payment id, the refund of a dispute
    lost on it beside it."""

    async def get(self, key: str) -> RecordBackProgress | None: ...

    async def save(self, progress: RecordBackProgress, tried: RecordBackTry, tx: Transaction) -> None: ...

    async def create(self, progress: RecordBackProgress, tx: Transaction) -> bool:
        """Store a record no try was made of yet (a lost dispute's refund); False if one is under its key."""
        ...

    async def history(
        self, merchant_id: str, payment_id: str, dispute_id: str | None = None
    ) -> RecordBackHistory | None:
        """The payment's record back (or the refund of dispute `dispute_id`) and every try, if the payment is
        `merchant_id`'s."""
        ...

    async def restart(self, restarted: RecordBackProgress, tx: Transaction) -> bool:
        """Store the restarted progress if the record back is still abandoned or blocked; False if it moved."""
        ...


# The connector that charges for an account the domain lets charge.
ConnectorFactory = Callable[[ConnectorAccount], PaymentConnector]


@dataclass(frozen=True)
class ChargeLease:
    """How long a charge lease lasts (wall clock, written on the fence). A charge is sent, and its call cut, within
    the first half of it, measured on the monotonic clock from asking for it; the second half covers the connector
    finishing a request it received and the hosts' clocks disagreeing (docs/guarantees.md)."""

    length: timedelta

    @property
    def send_within_seconds(self) -> float:
        return self.length.total_seconds() / 2


@dataclass(frozen=True)
class ExecutorAdapters:
    """The executor's I/O, built by app.py from settings or passed in (the unit tests' in-memory ones)."""

    unit_of_work: UnitOfWorkPort
    publisher: Publisher
    clock: Clock
    attempts: AttemptRepository
    payment_states: PaymentStateRepository
    connector_accounts: ConnectorAccountRepository
    record_backs: RecordBackRepository
    connectors: ConnectorFactory
    billing: BillingRecorder
    # The payment fences shared with intake: a charge lease before every connector charge (docs/guarantees.md).
    payment_fences: PaymentFences
    # Record back through a billing system's own API (stripebilling); None: such record backs wait on timers.
    billing_systems: BillingSystemRecorder | None = None


@dataclass(frozen=True, kw_only=True)
class Dependencies(ExecutorAdapters):
    """What every handler takes: the adapters, and the settings the handlers read."""

    time_scale: TimeScale
    instance_id: str  # the owner this executor writes into the attempts it holds
    abandoned_after: timedelta  # an attempt still charging after this long was abandoned by a crashed executor
    charge_lease: ChargeLease

    @classmethod
    def of(
        cls,
        adapters: ExecutorAdapters,
        *,
        time_scale: TimeScale,
        instance_id: str,
        abandoned_after: timedelta,
        charge_lease: ChargeLease,
    ) -> Dependencies:
        given = {field.name: getattr(adapters, field.name) for field in fields(ExecutorAdapters)}
        return cls(
            **given,
            time_scale=time_scale,
            instance_id=instance_id,
            abandoned_after=abandoned_after,
            charge_lease=charge_lease,
        )
