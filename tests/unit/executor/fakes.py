"""In-memory stand-ins for the executor's adapters, with the same compare-and-set rules as the MongoDB ones, a
connector that answers from a script, and the executor built around them under FastStream's TestRabbitBroker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx
from faststream.rabbit import RabbitBroker

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import ConnectorAccountUpdated, ExecuteRetry, RecordBack, RecoveryUpdated
from recovery_executor.adapters.stripe import outcome_from_response
from recovery_executor.app import build_service
from recovery_executor.dependencies import ConnectorAccountRepository, ExecutorAdapters
from recovery_executor.domain.attempt import Attempt, AttemptStatus
from recovery_executor.domain.charge_guard import ChargeFacts
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_executor.domain.ports import BillingSystemRecorder, PaymentConnector, RecordBackAnswer
from recovery_executor.domain.record_back import (
    RecordBackHistory,
    RecordBackProgress,
    RecordBackStatus,
    RecordBackTry,
    record_back_key,
)
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.service import Service
from recovery_runtime.testing import FixedClock, InMemoryPaymentFences, InMemoryUnitOfWork, RecordingPublisher, publish
from recovery_runtime.unit_of_work import Transaction

INSTANCE = "executor-1"
OTHER_INSTANCE = "executor-2"


def approved(connector_transaction_id: str = "pi_approved") -> ChargeOutcome:
    return ChargeOutcome(ChargeOutcomeKind.SUCCEEDED, connector_transaction_id=connector_transaction_id)


def declined(decline_code: str = "insufficient_funds") -> ChargeOutcome:
    return ChargeOutcome(
        ChargeOutcomeKind.DECLINED,
        connector_transaction_id="pi_declined",
        decline_code=decline_code,
        error_code="card_declined",
        message="Your card has insufficient funds.",
        advice_code="try_again_later",
    )


def timed_out() -> ChargeOutcome:
    return ChargeOutcome(ChargeOutcomeKind.UNKNOWN, message="ReadTimeout")


def not_found() -> ChargeOutcome:
    return ChargeOutcome(ChargeOutcomeKind.NOT_FOUND)


def idempotency_error() -> ChargeOutcome:
    """Stripe's 400 for a key first used with other parameters, as the Stripe adapter reads it."""
    body = {
        "error": {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters they were first "
            "used with. Try using a key other than 'recovery:12345_pay_1:attempt:1' if you meant to execute a "
            "different request.",
        }
    }
    return outcome_from_response(400, body)


class ScriptedConnector:
    """Answers charges and syncs from its scripts, in order (approving once a script runs out); records calls.
    `while_charging` runs once, while the next charge call is in flight."""

    def __init__(self) -> None:
        self.charge_answers: list[ChargeOutcome] = []
        self.sync_answers: list[ChargeOutcome] = []
        self.charges: list[ChargeRequest] = []
        self.syncs: list[tuple[ChargeRequest, str | None]] = []
        self.while_charging: Callable[[], None] | None = None

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        self.charges.append(request)
        during, self.while_charging = self.while_charging, None
        if during is not None:
            during()
        return self.charge_answers.pop(0) if self.charge_answers else approved()

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        self.syncs.append((request, connector_transaction_id))
        return self.sync_answers.pop(0) if self.sync_answers else approved()


class ScriptedBilling:
    def __init__(self) -> None:
        self.answers: list[RecordBackAnswer] = []
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def record_back(self, url: str, body: dict[str, Any], *, idempotency_key: str) -> RecordBackAnswer:
        self.calls.append((url, body, idempotency_key))
        return self.answers.pop(0) if self.answers else RecordBackAnswer(accepted=True, status_code=200)


class InMemoryAttempts:
    """The attempt records; `race_next` runs once, right before the next claim or take-over: another executor
    getting there first."""

    def __init__(self) -> None:
        self.records: dict[str, Attempt] = {}
        self.race_next: Callable[[], None] | None = None

    def _race(self) -> None:
        race, self.race_next = self.race_next, None
        if race is not None:
            race()

    async def claim(self, attempt: Attempt) -> Attempt | None:
        self._race()
        if attempt.key in self.records:
            return self.records[attempt.key]
        self.records[attempt.key] = attempt
        return None

    async def get(self, key: str) -> Attempt | None:
        return self.records.get(key)

    async def take_over(self, previous: Attempt, taken: Attempt) -> bool:
        self._race()
        current = self.records[previous.key]
        if current.status not in (AttemptStatus.CHARGING, AttemptStatus.UNKNOWN):
            return False
        if current.started_at != previous.started_at:
            return False
        self.records[previous.key] = replace(
            current, status=taken.status, started_at=taken.started_at, owner=taken.owner, resumptions=taken.resumptions
        )
        return True

    async def reopen(self, reopened: Attempt) -> bool:
        current = self.records[reopened.key]
        if current.status is not AttemptStatus.SKIPPED or current.attempt_id == reopened.attempt_id:
            return False
        self.records[reopened.key] = reopened
        return True

    async def save_unknown(self, attempt: Attempt, tx: Transaction) -> bool:
        return self._while_held(attempt)

    async def save_refused(self, attempt: Attempt, tx: Transaction) -> bool:
        return self._while_held(attempt)

    async def save_settled(self, attempt: Attempt, tx: Transaction) -> bool:
        tx.embed("attempts", attempt.key, attempt.settled_at)
        return self._while_held(attempt)

    def _while_held(self, attempt: Attempt) -> bool:
        current = self.records[attempt.key]
        if current.status is not AttemptStatus.CHARGING or current.owner != attempt.owner:
            return False
        self.records[attempt.key] = attempt
        return True

    def held_by_another(self, command: Envelope[ExecuteRetry], started_at: datetime) -> Attempt:
        """Another executor claimed `command`'s attempt (or took it over) at `started_at`."""
        claimed = Attempt.claim(command.payload, "another-copy", OTHER_INSTANCE, started_at)
        current = self.records.get(claimed.key, claimed)
        self.records[claimed.key] = replace(current, status=claimed.status, owner=OTHER_INSTANCE, started_at=started_at)
        return self.records[claimed.key]


class InMemoryPaymentStates:
    def __init__(self, attempts: InMemoryAttempts) -> None:
        self.states: dict[str, tuple[int, str]] = {}  # payment id -> (version, intent status)
        self._attempts = attempts

    async def apply(self, update: RecoveryUpdated, now: datetime, tx: Transaction) -> bool:
        current = self.states.get(update.payment.payment_id)
        if current is not None and current[0] >= update.version:
            return False
        self.states[update.payment.payment_id] = (update.version, update.intent_status.value)
        return True

    async def charge_facts(self, payment_id: str) -> ChargeFacts:
        state = self.states.get(payment_id)
        paid = next(
            (
                a.attempt_number
                for a in self._attempts.records.values()
                if a.payment_id == payment_id and a.status is AttemptStatus.SUCCEEDED
            ),
            None,
        )
        return ChargeFacts(intent_status=None if state is None else state[1], succeeded_attempt=paid)


class InMemoryConnectorAccounts:
    def __init__(self) -> None:
        self.accounts: dict[str, tuple[int, ConnectorAccount]] = {}

    async def apply(self, update: ConnectorAccountUpdated, tx: Transaction) -> bool:
        current = self.accounts.get(update.connector_account_id)
        if current is not None and current[0] >= update.version:
            return False
        account = ConnectorAccount(
            update.connector_account_id, update.connector_name, update.api_key or "", update.disabled
        )
        self.accounts[update.connector_account_id] = (update.version, account)
        return True

    async def get(self, connector_account_id: str) -> ConnectorAccount | None:
        current = self.accounts.get(connector_account_id)
        return None if current is None else current[1]


class InMemoryRecordBacks:
    """Records by key (`record_back_key`), as the MongoDB repository keeps them."""

    def __init__(self) -> None:
        self.progress: dict[str, RecordBackProgress] = {}
        self.tries: dict[str, list[RecordBackTry]] = {}

    async def get(self, key: str) -> RecordBackProgress | None:
        return self.progress.get(key)

    async def save(self, progress: RecordBackProgress, tried: RecordBackTry, tx: Transaction) -> None:
        kept = self.progress.get(progress.key)
        self.tries.setdefault(progress.key, []).append(tried)
        if kept is not None and kept.status == RecordBackStatus.ACCEPTED and progress.status != kept.status:
            return  # never over an accepted record (as the MongoDB store)
        if progress.billing_transaction_id is None and kept is not None:
            progress = replace(progress, billing_transaction_id=kept.billing_transaction_id)
        self.progress[progress.key] = progress

    async def create(self, progress: RecordBackProgress, tx: Transaction) -> bool:
        if progress.key in self.progress:
            return False
        self.progress[progress.key] = progress
        self.tries[progress.key] = []
        return True

    async def history(
        self, merchant_id: str, payment_id: str, dispute_id: str | None = None
    ) -> RecordBackHistory | None:
        key = record_back_key(payment_id, dispute_id)
        progress = self.progress.get(key)
        if progress is None or progress.merchant_id != merchant_id:
            return None
        return RecordBackHistory(progress, tuple(self.tries[key]))

    async def restart(self, restarted: RecordBackProgress, tx: Transaction) -> bool:
        current = self.progress.get(restarted.key)
        if current is None or current.status not in (RecordBackStatus.ABANDONED, RecordBackStatus.BLOCKED):
            return False
        self.progress[restarted.key] = restarted
        return True


class ScriptedBillingSystems:
    """A billing system's API as the executor's port sees it: answers from `answers` (payments) and
    `refund_answers` (refunds), in order, accepting once a script runs out; records every call."""

    def __init__(self) -> None:
        self.answers: list[RecordBackAnswer] = []
        self.refund_answers: list[RecordBackAnswer] = []
        self.calls: list[tuple[RecordBack, str]] = []
        self.refunds: list[tuple[RecordBack, str | None, str]] = []

    async def record_back(self, request: RecordBack, *, idempotency_key: str) -> RecordBackAnswer:
        self.calls.append((request, idempotency_key))
        return self.answers.pop(0) if self.answers else RecordBackAnswer(accepted=True, status_code=200)

    async def record_refund(
        self, request: RecordBack, *, transaction_id: str | None, idempotency_key: str
    ) -> RecordBackAnswer:
        self.refunds.append((request, transaction_id, idempotency_key))
        accepted = RecordBackAnswer(accepted=True, status_code=200, transaction_id="txn_refund")
        return self.refund_answers.pop(0) if self.refund_answers else accepted


@dataclass
class Executor:
    """The executor service on in-memory adapters, and handles on each of them."""

    service: Service
    publisher: RecordingPublisher
    clock: FixedClock
    attempts: InMemoryAttempts
    states: InMemoryPaymentStates
    accounts: InMemoryConnectorAccounts
    record_backs: InMemoryRecordBacks
    connector: ScriptedConnector
    billing: ScriptedBilling
    accounts_given_to_connectors: list[ConnectorAccount] = field(default_factory=list)
    fences: InMemoryPaymentFences = field(default_factory=InMemoryPaymentFences)
    broker: RabbitBroker | None = None  # the TestRabbitBroker, while it runs

    async def send(self, queue_name: str, message: Envelope[Any] | bytes) -> None:
        """Deliver `message` to `queue_name`'s handler, through the real consumer pipeline; returns once handled."""
        assert self.broker is not None, "send under TestRabbitBroker (the `executor` fixture)"
        await publish(self.broker, queue_name, message)

    def published(self, message_type: MessageType) -> list[Envelope[Any]]:
        return self.publisher.envelopes(message_type)

    async def record_back_of(
        self, payment_id: str, merchant_id: str = "merchant_test", dispute_id: str | None = None, **headers: str
    ) -> Any:
        """`GET /internal/record-backs/{merchant}/{payment}` as a holder of the internal token asks it (with
        `dispute_id`: the refund record of that dispute)."""
        path = f"/internal/record-backs/merchant_test/{payment_id}" + _dispute_query(dispute_id)
        return await self._internal("GET", path, merchant_id, headers)

    async def restart_record_back(
        self,
        payment_id: str,
        body: Any,
        merchant_id: str = "merchant_test",
        dispute_id: str | None = None,
        **headers: str,
    ) -> Any:
        """`POST /internal/record-backs/{merchant}/{payment}/restart` (intake's PSYNC resume) with `body`."""
        path = f"/internal/record-backs/merchant_test/{payment_id}/restart" + _dispute_query(dispute_id)
        return await self._internal("POST", path, merchant_id, headers, json=body)

    async def _internal(
        self, method: str, path: str, merchant_id: str, headers: dict[str, str], json: Any = None
    ) -> Any:
        sent = {TOKEN_HEADER: ExecutorSettings().internal_api_token, MERCHANT_HEADER: merchant_id, **headers}
        transport = httpx.ASGITransport(app=self.service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://executor", headers=sent) as http:
            return await http.request(method, path, json=json)


def _dispute_query(dispute_id: str | None) -> str:
    return "" if dispute_id is None else f"?dispute_id={dispute_id}"


def in_memory_executor(
    billing_systems: Callable[[ConnectorAccountRepository], BillingSystemRecorder] | None = None, **settings: Any
) -> Executor:
    """The executor on in-memory adapters; `billing_systems` builds its recorder for billing systems' APIs around
    the executor's connector accounts (None: it has none, as a deployment without billing systems)."""
    publisher = RecordingPublisher()
    clock = FixedClock()
    attempts = InMemoryAttempts()
    states = InMemoryPaymentStates(attempts)
    accounts = InMemoryConnectorAccounts()
    record_backs = InMemoryRecordBacks()
    connector = ScriptedConnector()
    billing = ScriptedBilling()
    given: list[ConnectorAccount] = []
    fences = InMemoryPaymentFences()

    def connectors(account: ConnectorAccount) -> PaymentConnector:
        given.append(account)
        return connector

    adapters = ExecutorAdapters(
        unit_of_work=InMemoryUnitOfWork(publisher),
        publisher=publisher,
        clock=clock,
        attempts=attempts,
        payment_states=states,
        connector_accounts=accounts,
        record_backs=record_backs,
        connectors=connectors,
        billing=billing,
        payment_fences=fences,
        billing_systems=billing_systems(accounts) if billing_systems is not None else None,
    )
    service = build_service(ExecutorSettings(service_instance_id=INSTANCE, **settings), adapters)
    return Executor(
        service, publisher, clock, attempts, states, accounts, record_backs, connector, billing, given, fences
    )
