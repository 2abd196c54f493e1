"""Executor handlers: one charge per planned attempt, and the connector-credentials projection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
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
)
from recovery_contracts.payments import ConnectorTransmission, IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_executor.adapters.repository import AttemptRepository, CredentialRepository
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_executor.domain.ports import PaymentConnector
from recovery_runtime.bus import MessageRejected, OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
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


SETTLED = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED, AttemptStatus.ERROR})


class OutcomePending(Exception):
    """The attempt's outcome is not known yet: the message is requeued and the attempt looked at again."""


def attempt_key(payment_id: str, attempt_number: int) -> str:
    return f"{payment_id}:{attempt_number}"


def idempotency_key(payment_id: str, attempt_number: int) -> str:
    # Deterministic per planned attempt: any replay of this attempt reaches the connector with the same key.
    return f"recovery:{payment_id}:attempt:{attempt_number}"


class ExecuteRetryHandler:
    def __init__(
        self,
        *,
        store: MessageStore,
        attempts: AttemptRepository,
        credentials: CredentialRepository,
        connector_for: Callable[[dict[str, Any]], PaymentConnector],
        publisher: Publisher,
        clock: Clock,
        instance_id: str,
        abandoned_after: timedelta,
    ) -> None:
        self._store = store
        self._attempts = attempts
        self._credentials = credentials
        self._connector_for = connector_for
        self._publisher = publisher
        self._clock = clock
        self._instance = instance_id
        self._abandoned_after = abandoned_after

    async def __call__(self, envelope: Envelope[ExecuteRetry], queue: ConsumerQueue) -> None:
        command = envelope.payload
        payment = command.payment
        key = attempt_key(payment.payment_id, command.attempt_number)
        account = await self._credentials.get(payment.payment_connector_id)
        if account is None:
            # The connector-account projection may lag the command by a moment; past the delivery limit the
            # command is dead-lettered and can be replayed once the account exists.
            raise RuntimeError(f"connector account {payment.payment_connector_id} not known to the executor yet")
        if account.get("disabled"):
            raise MessageRejected(f"connector account {payment.payment_connector_id} is disabled")

        now = self._clock.now()
        existing = await self._attempts.claim(
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
                "owner": self._instance,
                "command_message_id": envelope.message_id,
            }
        )
        connector = self._connector_for(account)
        request = self._charge_request(command)
        if existing is None:
            await self._settle(envelope, queue, await connector.charge(request))
            return
        await self._resume(existing, envelope, queue, connector, request)

    async def _resume(
        self,
        existing: dict[str, Any],
        envelope: Envelope[ExecuteRetry],
        queue: ConsumerQueue,
        connector: PaymentConnector,
        request: ChargeRequest,
    ) -> None:
        status = existing["status"]
        if status in SETTLED:
            # Settled before: its outcome message was committed to the outbox with it. Republishing the same
            # message id is harmless (consumers de-duplicate) and covers a lost publish.
            if existing.get("emitted"):
                await self._publisher.publish(OutgoingMessage.from_document(existing["emitted"]))
            log.info("attempt.already_settled", status=status)
            return
        now = self._clock.now()
        if status == AttemptStatus.CHARGING and now - existing["started_at"] < self._abandoned_after:
            raise OutcomePending(f"attempt {existing['_id']} is being charged by {existing.get('owner')}")
        if not await self._attempts.take_over(existing["_id"], existing["started_at"], now, self._instance):
            raise OutcomePending(f"attempt {existing['_id']} was taken over by another executor")
        # PSYNC: ask the connector what became of the attempt before anything else; never charge blind.
        outcome = await connector.sync(request, existing.get("connector_transaction_id"))
        log.warning("attempt.synced", previous_status=status, outcome=outcome.kind.value)
        if outcome.kind is ChargeOutcomeKind.NOT_FOUND:
            if now - existing["first_started_at"] >= IDEMPOTENCY_WINDOW:
                raise MessageRejected(
                    f"attempt {existing['_id']}: outcome unknown past the connector's idempotency window; "
                    "needs an operator (see docs/operations.md)"
                )
            # The connector never saw the call. Sending it again with the same idempotency key cannot make a
            # second charge: had the first call arrived meanwhile, the connector replays its result.
            outcome = await connector.charge(request)
        await self._settle(envelope, queue, outcome)

    def _charge_request(self, command: ExecuteRetry) -> ChargeRequest:
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

    async def _settle(self, envelope: Envelope[ExecuteRetry], queue: ConsumerQueue, outcome: ChargeOutcome) -> None:
        command = envelope.payload
        key = attempt_key(command.payment.payment_id, command.attempt_number)
        log.info("attempt.outcome", outcome=outcome.kind.value, decline_code=outcome.decline_code)
        if not outcome.is_final:
            # Timeout, 5xx, `processing`: the charge may have happened. Record it as unknown; the redelivered
            # command syncs it (PSYNC) instead of charging.
            await self._attempts.mark_unknown(key, self._instance, outcome.connector_transaction_id)
            raise OutcomePending(f"connector outcome unknown ({outcome.kind.value}): {outcome.message}")
        message = self._outcome_message(envelope, outcome)

        async def settle(tx: Transaction) -> None:
            settled = await self._attempts.settle(
                key,
                self._instance,
                {
                    "status": _status_of(outcome),
                    "settled_at": self._clock.now(),
                    "connector_transaction_id": outcome.connector_transaction_id,
                    "decline_code": outcome.decline_code,
                    "error_code": outcome.error_code,
                    "error_message": outcome.message,
                    "emitted": OutgoingMessage.of(message).to_document(self._clock.now()),
                },
                tx.session,
            )
            if not settled:
                raise OutcomePending(f"attempt {key} changed hands while it was being settled")
            tx.emit(message)

        await self._store.apply(settle, consumed=envelope, consumer=queue.name)

    def _outcome_message(self, envelope: Envelope[ExecuteRetry], outcome: ChargeOutcome) -> Envelope[Any]:
        command = envelope.payload
        payment = command.payment
        now = self._clock.now()
        common = {
            "correlation_id": payment.payment_id,
            "causation_id": envelope.message_id,
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
