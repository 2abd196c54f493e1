"""Executor handlers: one charge per planned attempt, and the connector-credentials projection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import (
    AttemptOutcome,
    ConnectorAccountUpdated,
    ExecuteRetry,
    PaymentAttemptFailed,
    PaymentSucceeded,
    PaymentSync,
    RecordBack,
    RecordBackBody,
    RecoveryUpdated,
    ScheduleTimer,
)
from recovery_contracts.payments import ConnectorTransmission, IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_executor.adapters.repository import (
    AttemptRepository,
    CredentialRepository,
    PaymentStateRepository,
    RecordBackRepository,
)
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_executor.domain.follow_up import NOT_FOUND_SYNCS_BEFORE_GIVING_UP, psync_delay, record_back_delay
from recovery_executor.domain.ports import BillingRecorder, PaymentConnector
from recovery_runtime.bus import AlreadyApplied, MessageRejected, OutgoingMessage, Publisher
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction

log = structlog.get_logger(__name__)


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
# Intent statuses (intake's projection via recovery.updated) under which nothing may be charged.
NOT_CHARGEABLE = {
    IntentStatus.CANCELLED.value: "the invoice was cancelled",
    IntentStatus.SUCCEEDED.value: "the invoice was paid elsewhere",
    IntentStatus.PROCESSING.value: "the billing system reports a payment in progress",
}


class OutcomePending(Exception):
    """The attempt's outcome is not known yet: the message is requeued and the attempt looked at again."""


def attempt_key(payment_id: str, attempt_number: int) -> str:
    return f"{payment_id}:{attempt_number}"


def idempotency_key(payment_id: str, attempt_number: int) -> str:
    # Deterministic per planned attempt: any replay of this attempt reaches the connector with the same key.
    return f"recovery:{payment_id}:attempt:{attempt_number}"


class ChargeGuard:
    """Right before any connector call: may this payment still be charged? From the executor's own records only:
    its projection of the intent (recovery.updated) and its attempts."""

    def __init__(self, states: PaymentStateRepository, attempts: AttemptRepository) -> None:
        self._states = states
        self._attempts = attempts

    async def refusal(self, payment_id: str) -> str | None:
        state, paid = await self._states.state_and_success(payment_id)
        if state is not None and state.get("status") in NOT_CHARGEABLE:
            return NOT_CHARGEABLE[state["status"]]
        if paid is not None:
            return f"attempt {paid['attempt_number']} of this payment already succeeded"
        return None


class AttemptRunner:
    """Charges a claimed attempt, settles it, or hands it to PSYNC; shared by EXECUTE and PSYNC."""

    def __init__(
        self,
        *,
        store: MessageStore,
        attempts: AttemptRepository,
        guard: ChargeGuard,
        clock: Clock,
        time_scale: TimeScale,
        instance_id: str,
    ) -> None:
        self._store = store
        self._attempts = attempts
        self._guard = guard
        self.guard = guard
        self._clock = clock
        self._scale = time_scale
        self.instance = instance_id

    async def charge(
        self,
        command: ExecuteRetry,
        cause: str,
        consumed: Envelope[Any],
        queue: ConsumerQueue,
        connector: PaymentConnector,
        guard: Awaitable[str | None] | None = None,
    ) -> None:
        """`guard`: the charge guard's answer already asked for (concurrently with the claim), else asked now."""
        refusal = await (guard if guard is not None else self._guard.refusal(command.payment.payment_id))
        if refusal is not None:
            await self._skip(command, refusal, consumed, queue)
            return
        outcome = await connector.charge(charge_request(command))
        await self.settle_or_watch(command, cause, consumed, queue, outcome, sync_number=0)

    async def sync(
        self,
        existing: dict[str, Any],
        command: ExecuteRetry,
        cause: str,
        consumed: Envelope[Any],
        queue: ConsumerQueue,
        connector: PaymentConnector,
        sync_number: int,
    ) -> None:
        """PSYNC: ask the connector what became of the attempt before anything else; never charge blind."""
        request = charge_request(command)
        outcome = await connector.sync(request, existing.get("connector_transaction_id"))
        log.warning("attempt.synced", previous_status=existing["status"], outcome=outcome.kind.value, sync=sync_number)
        if outcome.kind is ChargeOutcomeKind.NOT_FOUND:
            if self._clock.now() - existing["first_started_at"] >= IDEMPOTENCY_WINDOW:
                raise MessageRejected(
                    f"attempt {existing['_id']}: outcome unknown past the connector's idempotency window; "
                    "needs an operator (see docs/operations.md)"
                )
            refusal = await self._guard.refusal(command.payment.payment_id)
            if refusal is not None and sync_number >= NOT_FOUND_SYNCS_BEFORE_GIVING_UP:
                await self._skip(command, f"{refusal}; the connector never saw the attempt", consumed, queue)
                return
            if refusal is None:
                # The connector never saw the call. Sending it again with the same idempotency key cannot make a
                # second charge: had the first call arrived meanwhile, the connector replays its result.
                outcome = await connector.charge(request)
        await self.settle_or_watch(command, cause, consumed, queue, outcome, sync_number)

    async def settle_or_watch(
        self,
        command: ExecuteRetry,
        cause: str,
        consumed: Envelope[Any],
        queue: ConsumerQueue,
        outcome: ChargeOutcome,
        sync_number: int,
    ) -> None:
        key = attempt_key(command.payment.payment_id, command.attempt_number)
        log.info("attempt.outcome", outcome=outcome.kind.value, decline_code=outcome.decline_code)
        if not outcome.is_final:
            await self._watch(command, cause, consumed, queue, outcome, sync_number + 1)
            return
        message = outcome_message(command, cause, outcome, self._clock.now())

        async def settle(tx: Transaction) -> None:
            # One write, no transaction: the attempt record is the consumed command's inbox (claimed before the
            # call; a copy finds it settled) and, with the compare-and-set on its status and owner, the outcome
            # and the messages it emits (embedded outbox) are one document.
            now = self._clock.now()
            tx.emit(message)
            if outcome.kind is ChargeOutcomeKind.SUCCEEDED and command.payment.record_back_url:
                tx.emit(record_back_command(command, outcome, cause))
            settled = await self._attempts.settle(
                key,
                self.instance,
                {
                    "status": _status_of(outcome),
                    "settled_at": now,
                    "connector_transaction_id": outcome.connector_transaction_id,
                    "decline_code": outcome.decline_code,
                    "error_code": outcome.error_code,
                    "error_message": outcome.message,
                    "emitted": OutgoingMessage.of(message).to_document(now),
                },
                None,
                outbox=tx.embed(self._attempts.collection, key, now),
            )
            if not settled:
                raise OutcomePending(f"attempt {key} changed hands while it was being settled")

        await self._store.write(settle)

    async def _watch(
        self,
        command: ExecuteRetry,
        cause: str,
        consumed: Envelope[Any],
        queue: ConsumerQueue,
        outcome: ChargeOutcome,
        sync_number: int,
    ) -> None:
        """Timeout, 5xx, `processing`: the charge may have happened. The attempt becomes `unknown` and a durable
        PSYNC timer brings it back; the command is acknowledged (no redelivery loop, no dead-lettering)."""
        payment = command.payment
        key = attempt_key(payment.payment_id, command.attempt_number)
        now = self._clock.now()
        due = now + self._scale.wall(psync_delay(sync_number))
        sync = Envelope[PaymentSync](
            type=MessageType.PAYMENT_SYNC,
            correlation_id=payment.payment_id,
            causation_id=consumed.message_id,
            merchant_id=payment.merchant_id,
            profile_id=payment.profile_id,
            payload=PaymentSync(execute=command, execute_message_id=cause, sync_number=sync_number),
        )
        timer = timer_request(
            f"psync:{key}:{sync_number}", due, PSYNC_TIMER_KIND, payment.payment_id, sync, consumed.message_id
        )

        async def watch(tx: Transaction) -> None:
            if not await self._attempts.mark_unknown(
                key, self.instance, outcome.connector_transaction_id, due, tx.session
            ):
                raise OutcomePending(f"attempt {key} changed hands while its outcome was unknown")
            tx.emit(timer)

        log.warning("attempt.unknown", outcome=outcome.kind.value, message=outcome.message, next_sync=sync_number)
        await self._store.apply(watch, consumed=consumed, consumer=queue.name)

    async def _skip(self, command: ExecuteRetry, reason: str, consumed: Envelope[Any], queue: ConsumerQueue) -> None:
        key = attempt_key(command.payment.payment_id, command.attempt_number)

        async def skip(tx: Transaction) -> None:
            fields = {"status": AttemptStatus.SKIPPED, "settled_at": self._clock.now(), "skip_reason": reason}
            if not await self._attempts.settle(key, self.instance, fields, tx.session):
                raise OutcomePending(f"attempt {key} changed hands while it was being refused")

        log.warning("attempt.refused", reason=reason)
        await self._store.apply(skip, consumed=consumed, consumer=queue.name)


class ExecuteRetryHandler:
    def __init__(
        self,
        *,
        runner: AttemptRunner,
        attempts: AttemptRepository,
        credentials: CredentialRepository,
        connector_for: Callable[[dict[str, Any]], PaymentConnector],
        publisher: Publisher,
        clock: Clock,
        abandoned_after: timedelta,
    ) -> None:
        self._runner = runner
        self._attempts = attempts
        self._credentials = credentials
        self._connector_for = connector_for
        self._publisher = publisher
        self._clock = clock
        self._abandoned_after = abandoned_after

    async def __call__(self, envelope: Envelope[ExecuteRetry], queue: ConsumerQueue) -> None:
        command = envelope.payload
        payment = command.payment
        connector = await connector_of(self._credentials, self._connector_for, payment.payment_connector_id)
        key = attempt_key(payment.payment_id, command.attempt_number)
        now = self._clock.now()
        # The guard's read runs alongside the claim (two round trips, one wait): its facts do not depend on it.
        guard = asyncio.ensure_future(self._runner.guard.refusal(payment.payment_id))
        guard.add_done_callback(lambda done: done.cancelled() or done.exception())  # never an unretrieved error
        claim = self._attempts.claim(
            {
                "_id": key,
                "payment_id": payment.payment_id,
                "attempt_number": command.attempt_number,
                "attempt_id": command.attempt_id,
                "token": command.token.token,
                "idempotency_key": idempotency_key(payment.payment_id, command.attempt_number),
                "status": AttemptStatus.CHARGING,
                "first_started_at": now,
                "started_at": now,
                "owner": self._runner.instance,
                "command_message_id": envelope.message_id,
            }
        )
        try:
            existing = await claim
        except BaseException:
            guard.cancel()
            raise
        if existing is None:
            await self._runner.charge(command, envelope.message_id, envelope, queue, connector, guard)
            return
        guard.cancel()
        await self._resume(existing, envelope, queue, connector)

    async def _resume(
        self,
        existing: dict[str, Any],
        envelope: Envelope[ExecuteRetry],
        queue: ConsumerQueue,
        connector: PaymentConnector,
    ) -> None:
        command = envelope.payload
        status = existing["status"]
        if status in SETTLED:
            # Settled before: its outcome message was committed to the outbox with it. Republishing the same
            # message id is harmless (consumers de-duplicate) and covers a lost publish.
            if existing.get("emitted"):
                await self._publisher.publish(OutgoingMessage.from_document(existing["emitted"]))
            log.info("attempt.already_settled", status=status)
            if existing.get("command_message_id") == envelope.message_id:
                raise AlreadyApplied(envelope.message_id)
            return
        now = self._clock.now()
        if status == AttemptStatus.SKIPPED:
            # Refused before any connector call; the scheduler planned the same attempt number again (a paused
            # recovery resumed). A copy of the refused command itself stays refused.
            if await self._attempts.reopen_skipped(existing["_id"], command.attempt_id, now, self._runner.instance):
                await self._runner.charge(command, envelope.message_id, envelope, queue, connector)
            return
        if status == AttemptStatus.UNKNOWN:
            log.info("attempt.psync_pending", next_sync_at=str(existing.get("next_sync_at")))
            return
        if now - existing["started_at"] < self._abandoned_after:
            raise OutcomePending(f"attempt {existing['_id']} is being charged by {existing.get('owner')}")
        if not await self._attempts.take_over(existing["_id"], existing["started_at"], now, self._runner.instance):
            raise OutcomePending(f"attempt {existing['_id']} was taken over by another executor")
        await self._runner.sync(existing, command, envelope.message_id, envelope, queue, connector, sync_number=1)


class PaymentSyncHandler:
    """PSYNC on a durable timer: settle an attempt whose outcome was unknown, or look again later."""

    def __init__(
        self,
        *,
        runner: AttemptRunner,
        attempts: AttemptRepository,
        credentials: CredentialRepository,
        connector_for: Callable[[dict[str, Any]], PaymentConnector],
        publisher: Publisher,
        clock: Clock,
        abandoned_after: timedelta,
    ) -> None:
        self._runner = runner
        self._attempts = attempts
        self._credentials = credentials
        self._connector_for = connector_for
        self._publisher = publisher
        self._clock = clock
        self._abandoned_after = abandoned_after

    async def __call__(self, envelope: Envelope[PaymentSync], queue: ConsumerQueue) -> None:
        sync = envelope.payload
        command = sync.execute
        key = attempt_key(command.payment.payment_id, command.attempt_number)
        existing = await self._attempts.get(key)
        if existing is None:
            raise MessageRejected(f"PSYNC for attempt {key}, which this executor never started")
        status = existing["status"]
        if status in SETTLED or status == AttemptStatus.SKIPPED:
            if existing.get("emitted"):
                await self._publisher.publish(OutgoingMessage.from_document(existing["emitted"]))
            return
        now = self._clock.now()
        if status == AttemptStatus.CHARGING and now - existing["started_at"] < self._abandoned_after:
            # Another executor holds it right now; it settles or watches it. Looked at again after a pause, and
            # taken over once abandoned (the pauses before the delivery limit outlast `abandoned_after`).
            raise OutcomePending(f"attempt {key} is held by {existing.get('owner')}")
        if not await self._attempts.take_over(existing["_id"], existing["started_at"], now, self._runner.instance):
            log.info("attempt.psync_lost_race")
            return
        connector = await connector_of(self._credentials, self._connector_for, command.payment.payment_connector_id)
        await self._runner.sync(
            existing, command, sync.execute_message_id, envelope, queue, connector, sync_number=sync.sync_number
        )


class RecordBackHandler:
    """Tell the billing connector about a successful retry; retried on durable timers until it answers 2xx."""

    def __init__(
        self,
        *,
        store: MessageStore,
        records: RecordBackRepository,
        recorder: BillingRecorder,
        clock: Clock,
        time_scale: TimeScale,
    ) -> None:
        self._store = store
        self._records = records
        self._recorder = recorder
        self._clock = clock
        self._scale = time_scale

    async def __call__(self, envelope: Envelope[RecordBack], queue: ConsumerQueue) -> None:
        request = envelope.payload
        done = await self._records.get(request.payment_id)
        if done is not None and done.get("status") == "accepted":
            return
        answer = await self._recorder.record_back(
            request.url, request.body.model_dump(mode="json"), idempotency_key=f"record-back:{request.payment_id}"
        )
        now = self._clock.now()
        attempt = {"attempt": request.attempt, "at": now, "status_code": answer.status_code, "error": answer.error}
        delay = None if answer.accepted else record_back_delay(request.attempt)

        async def record(tx: Transaction) -> None:
            if answer.accepted:
                status = "accepted"
            elif delay is None:
                status = "abandoned"
            else:
                status = "retrying"
            fields = {"status": status, "url": request.url, "attempts": request.attempt, "updated_at": now}
            await self._records.record_try(request.payment_id, fields, attempt, tx.session)
            if delay is not None:
                again = Envelope[RecordBack](
                    type=MessageType.RECORD_BACK,
                    correlation_id=request.payment_id,
                    causation_id=envelope.message_id,
                    merchant_id=envelope.merchant_id,
                    profile_id=envelope.profile_id,
                    payload=request.model_copy(update={"attempt": request.attempt + 1}),
                )
                due = now + self._scale.wall(delay)
                tx.emit(
                    timer_request(
                        f"record-back:{request.payment_id}:{request.attempt + 1}",
                        due,
                        RECORD_BACK_TIMER_KIND,
                        request.payment_id,
                        again,
                        envelope.message_id,
                    )
                )

        if answer.accepted:
            log.info("record_back.accepted", attempt=request.attempt, status_code=answer.status_code)
        else:
            log.warning(
                "record_back.refused",
                attempt=request.attempt,
                status_code=answer.status_code,
                error=answer.error,
                gives_up=delay is None,
            )
        await self._store.apply(record, consumed=envelope, consumer=queue.name)


class RecoveryUpdatedHandler:
    """Keeps the executor's projection of each intent's status, read by ChargeGuard before every charge."""

    def __init__(self, store: MessageStore, states: PaymentStateRepository, clock: Clock) -> None:
        self._store = store
        self._states = states
        self._clock = clock

    async def __call__(self, envelope: Envelope[RecoveryUpdated], queue: ConsumerQueue) -> None:
        async def project(tx: Transaction) -> None:
            await self._states.apply(envelope.payload, self._clock.now(), tx.session)

        await self._store.apply(project, consumed=envelope, consumer=queue.name)


PSYNC_TIMER_KIND = "payment_sync"
RECORD_BACK_TIMER_KIND = "record_back"


async def connector_of(
    credentials: CredentialRepository,
    connector_for: Callable[[dict[str, Any]], PaymentConnector],
    connector_account_id: str,
) -> PaymentConnector:
    account = await credentials.get(connector_account_id)
    if account is None:
        # The connector-account projection may lag the command by a moment; past the delivery limit the
        # command is dead-lettered and can be replayed once the account exists.
        raise RuntimeError(f"connector account {connector_account_id} not known to the executor yet")
    if account.get("disabled"):
        raise MessageRejected(f"connector account {connector_account_id} is disabled")
    return connector_for(account)


def timer_request(
    timer_id: str, due_at: datetime, kind: str, payment_id: str, message: Envelope[Any], cause: str
) -> Envelope[ScheduleTimer]:
    """Ask the scheduler (the owner of durable timers) to publish `message` at `due_at`."""
    return Envelope[ScheduleTimer](
        type=MessageType.SCHEDULE_TIMER,
        correlation_id=payment_id,
        causation_id=cause,
        merchant_id=message.merchant_id,
        profile_id=message.profile_id,
        payload=ScheduleTimer(
            timer_id=timer_id, due_at=due_at, kind=kind, payment_id=payment_id, message=message.model_dump(mode="json")
        ),
    )


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


def record_back_command(command: ExecuteRetry, outcome: ChargeOutcome, cause: str) -> Envelope[RecordBack]:
    """Hyperswitch's InvoiceRecordBack body for a successful retry."""
    payment = command.payment
    return Envelope[RecordBack](
        type=MessageType.RECORD_BACK,
        correlation_id=payment.payment_id,
        causation_id=cause,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=RecordBack(
            payment_id=payment.payment_id,
            url=payment.record_back_url or "",
            body=RecordBackBody(
                merchant_reference_id=payment.merchant_reference_id,
                amount=payment.amount,
                currency=payment.currency,
                payment_method_type=payment.payment_method_type,
                attempt_status="charged",
                connector_transaction_id=outcome.connector_transaction_id,
            ),
        ),
    )


def outcome_message(command: ExecuteRetry, cause: str, outcome: ChargeOutcome, now: datetime) -> Envelope[Any]:
    payment = command.payment
    common = {
        "correlation_id": payment.payment_id,
        "causation_id": cause,
        "merchant_id": payment.merchant_id,
        "profile_id": payment.profile_id,
    }
    if outcome.kind is ChargeOutcomeKind.SUCCEEDED:
        payment_object = build_payment_object(
            payment,
            status=IntentStatus.SUCCEEDED,
            modified_at=now,
            attempt=AttemptSummary(
                total_retry_count=command.total_retry_count,
                token=command.token.token,
                connector_transaction_id=outcome.connector_transaction_id,
                transmission=ConnectorTransmission.SUCCEEDED,
            ),
        )
        return Envelope[PaymentSucceeded](
            type=MessageType.PAYMENT_SUCCEEDED,
            payload=PaymentSucceeded(
                payment_id=payment.payment_id,
                attempt_id=command.attempt_id,
                attempt_number=command.attempt_number,
                token=command.token.token,
                connector_transaction_id=outcome.connector_transaction_id or "",
                succeeded_at=now,
                payment=payment_object,
            ),
            **common,
        )
    return Envelope[PaymentAttemptFailed](
        type=MessageType.PAYMENT_ATTEMPT_FAILED,
        payload=PaymentAttemptFailed(
            payment_id=payment.payment_id,
            attempt_id=command.attempt_id,
            attempt_number=command.attempt_number,
            token=command.token.token,
            outcome=AttemptOutcome.DECLINED if outcome.kind is ChargeOutcomeKind.DECLINED else AttemptOutcome.ERROR,
            error_code=outcome.error_code,
            decline_code=outcome.decline_code,
            message=outcome.message,
            advice_code=outcome.advice_code,
            network_advice_code=outcome.network_advice_code,
            network_decline_code=outcome.network_decline_code,
            connector_transaction_id=outcome.connector_transaction_id,
            attempted_at=now,
        ),
        **common,
    )


def _status_of(outcome: ChargeOutcome) -> AttemptStatus:
    return {
        ChargeOutcomeKind.SUCCEEDED: AttemptStatus.SUCCEEDED,
        ChargeOutcomeKind.DECLINED: AttemptStatus.DECLINED,
    }.get(outcome.kind, AttemptStatus.ERROR)


class ConnectorAccountUpdatedHandler:
    def __init__(self, store: MessageStore, credentials: CredentialRepository) -> None:
        self._store = store
        self._credentials = credentials

    async def __call__(self, envelope: Envelope[ConnectorAccountUpdated], queue: ConsumerQueue) -> None:
        update = envelope.payload

        async def project(tx: Transaction) -> None:
            await self._credentials.apply(update, tx.session)

        await self._store.apply(project, consumed=envelope, consumer=queue.name)
