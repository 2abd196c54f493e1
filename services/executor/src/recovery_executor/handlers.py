"""Executor handlers: one charge per planned attempt, and the connector-credentials projection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
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
from recovery_runtime.bus import MessageRejected, OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction

from recovery_executor.adapters.repository import AttemptRepository, CredentialRepository
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_executor.domain.ports import PaymentConnector

log = structlog.get_logger(__name__)


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
                "status": "charging",
                "started_at": now,
                "owner": self._instance,
                "command_message_id": envelope.message_id,
            }
        )
        if existing is not None:
            await self._resume(existing, envelope, account, queue)
            return
        await self._charge_and_settle(envelope, account, queue)

    async def _resume(
        self,
        existing: dict[str, Any],
        envelope: Envelope[ExecuteRetry],
        account: dict[str, Any],
        queue: ConsumerQueue,
    ) -> None:
        if existing["status"] != "charging":
            # Settled before: its outcome message was committed to the outbox with it. Republishing the same
            # message id is harmless (consumers de-duplicate) and covers a lost publish.
            if existing.get("emitted"):
                await self._publisher.publish(OutgoingMessage.from_document(existing["emitted"]))
            log.info("attempt.already_settled", status=existing["status"])
            return
        started = existing["started_at"]
        if self._clock.now() - started < self._abandoned_after:
            raise OutcomePending(f"attempt {existing['_id']} is being charged by {existing.get('owner')}")
        if not await self._attempts.take_over(existing["_id"], started, self._clock.now(), self._instance):
            raise OutcomePending(f"attempt {existing['_id']} was taken over by another executor")
        log.warning("attempt.resumed", previous_owner=existing.get("owner"))
        # Same idempotency key as the abandoned call: the connector answers with that call's result if it
        # reached it, so this never makes a second charge.
        await self._charge_and_settle(envelope, account, queue)

    async def _charge_and_settle(
        self, envelope: Envelope[ExecuteRetry], account: dict[str, Any], queue: ConsumerQueue
    ) -> None:
        command = envelope.payload
        payment = command.payment
        connector = self._connector_for(account)
        request = ChargeRequest(
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
        outcome = await connector.charge(request)
        log.info("attempt.charged", outcome=outcome.kind.value, decline_code=outcome.decline_code)
        if outcome.kind in (ChargeOutcomeKind.UNKNOWN, ChargeOutcomeKind.PROCESSING):
            # Leave the attempt "charging": the redelivered command replays the same idempotent request,
            # which reports the first call's result once the connector has settled it.
            raise OutcomePending(f"connector outcome unknown: {outcome.message}")
        message = self._outcome_message(envelope, outcome)

        async def settle(tx: Transaction) -> None:
            settled = await self._attempts.settle(
                attempt_key(payment.payment_id, command.attempt_number),
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
            if settled:
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


def _status_of(outcome: ChargeOutcome) -> str:
    return {
        ChargeOutcomeKind.SUCCEEDED: "succeeded",
        ChargeOutcomeKind.DECLINED: "declined",
    }.get(outcome.kind, "error")


class ConnectorAccountUpdatedHandler:
    def __init__(self, store: MessageStore, credentials: CredentialRepository) -> None:
        self._store = store
        self._credentials = credentials

    async def __call__(self, envelope: Envelope[ConnectorAccountUpdated], queue: ConsumerQueue) -> None:
        update = envelope.payload

        async def project(tx: Transaction) -> None:
            await self._credentials.apply(update, tx.session)

        await self._store.apply(project, consumed=envelope, consumer=queue.name)
