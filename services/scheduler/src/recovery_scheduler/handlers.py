"""Scheduler handlers: one per message; each is one transaction through the unit of work."""

from __future__ import annotations

from typing import Any

import structlog

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    PaymentAttemptFailed,
    PaymentSucceeded,
    RecoveryScheduled,
    ScheduleTimer,
)
from recovery_runtime.bus import MessageRejected, OutgoingMessage
from recovery_runtime.clock import Clock
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction
from recovery_scheduler.adapters.recoveries import RecoveryRepository
from recovery_scheduler.adapters.timers import TimerKind, TimerRepository, timer_document
from recovery_scheduler.domain import AttemptOutcome, DeclineClass, classify_decline
from recovery_scheduler.workflow import TERMINAL, RecoveryStatus, Workflow, new_recovery_document, note

log = structlog.get_logger(__name__)


class SchedulerHandlers:
    def __init__(
        self,
        store: MessageStore,
        recoveries: RecoveryRepository,
        timers: TimerRepository,
        workflow: Workflow,
        clock: Clock,
    ) -> None:
        self._store = store
        self._recoveries = recoveries
        self._timers = timers
        self._workflow = workflow
        self._clock = clock

    async def recovery_scheduled(self, envelope: Envelope[RecoveryScheduled], queue: ConsumerQueue) -> None:
        payment = envelope.payload.payment

        async def start(tx: Transaction) -> None:
            existing = await self._recoveries.get(payment.payment_id, tx.session)
            if existing is not None:
                log.info("recovery.exists", status=existing["status"])
                return
            doc = new_recovery_document(payment, self._clock.now())
            await self._recoveries.insert(doc, tx.session)
            await self._workflow.plan(doc, tx, envelope.message_id)
            log.info("recovery.started", status=doc["status"], plan=str(doc.get("plan")))

        await self._store.apply(start, consumed=envelope, consumer=queue.name)

    async def attempt_failed(self, envelope: Envelope[PaymentAttemptFailed], queue: ConsumerQueue) -> None:
        failure = envelope.payload

        async def record(tx: Transaction) -> None:
            doc = await self._recoveries.get(failure.payment_id, tx.session)
            if doc is None:
                raise MessageRejected(f"no recovery {failure.payment_id} for attempt {failure.attempt_number}")
            if any(a["number"] == failure.attempt_number for a in doc["attempts"]):
                return
            doc["attempts"].append(
                {
                    "number": failure.attempt_number,
                    "attempt_id": failure.attempt_id,
                    "token": failure.token,
                    "at": failure.attempted_at,
                    "outcome": (
                        AttemptOutcome.DECLINED if failure.outcome.value == "declined" else AttemptOutcome.ERROR
                    ).value,
                    "decline_code": failure.decline_code,
                    "error_code": failure.error_code,
                    "message": failure.message,
                    "advice_code": failure.advice_code,
                    "network_advice_code": failure.network_advice_code,
                    "network_decline_code": failure.network_decline_code,
                    "connector_transaction_id": failure.connector_transaction_id,
                }
            )
            snapshot = doc["snapshot"]
            card_network = next(
                (t.get("card_network") for t in snapshot["tokens"] if t["token"] == failure.token), None
            )
            decline_class = classify_decline(
                failure.decline_code,
                failure.error_code,
                failure.advice_code,
                failure.network_advice_code,
                card_network,
                failure.network_decline_code,
            )
            if decline_class is DeclineClass.NEVER and failure.token not in doc["hard_declined_tokens"]:
                doc["hard_declined_tokens"].append(failure.token)
            note(
                doc,
                self._clock.now(),
                "attempt_failed",
                f"attempt {failure.attempt_number} {failure.outcome.value}: "
                f"{failure.decline_code or failure.error_code}",
                decline_class=decline_class.value,
                attempt_number=failure.attempt_number,
            )
            if RecoveryStatus(doc["status"]) in TERMINAL:
                await self._recoveries.save(doc, tx.session)
                return
            await self._workflow.plan(doc, tx, envelope.message_id)

        await self._store.apply(record, consumed=envelope, consumer=queue.name)

    async def payment_succeeded(self, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
        success = envelope.payload

        async def finish(tx: Transaction) -> None:
            doc = await self._recoveries.get(success.payment_id, tx.session)
            if doc is None:
                raise MessageRejected(f"no recovery {success.payment_id}")
            if not any(a["number"] == success.attempt_number for a in doc["attempts"]):
                doc["attempts"].append(
                    {
                        "number": success.attempt_number,
                        "attempt_id": success.attempt_id,
                        "token": success.token,
                        "at": success.succeeded_at,
                        "outcome": AttemptOutcome.SUCCEEDED.value,
                        "connector_transaction_id": success.connector_transaction_id,
                    }
                )
            now = self._clock.now()
            doc["status"] = RecoveryStatus.SUCCEEDED.value
            doc["business_status"] = "COMPLETED_EXECUTE_TASK"
            doc["plan"] = None
            doc["ended_at"] = now
            doc["updated_at"] = now
            note(doc, now, "ended", f"attempt {success.attempt_number} succeeded", outcome="succeeded")
            await self._timers.cancel_pending(success.payment_id, tx.session)
            await self._recoveries.save(doc, tx.session)

        await self._store.apply(finish, consumed=envelope, consumer=queue.name)

    async def schedule_timer(self, envelope: Envelope[ScheduleTimer], queue: ConsumerQueue) -> None:
        request = envelope.payload
        try:
            message = OutgoingMessage.of(_envelope_from(request.message))
        except ValueError as error:
            raise MessageRejected(f"timer {request.timer_id}: message is not a valid envelope: {error}") from error

        async def add(tx: Transaction) -> None:
            await self._timers.add(
                timer_document(
                    request.timer_id,
                    kind=TimerKind.MESSAGE,
                    due_at=request.due_at,
                    payment_id=request.payment_id,
                    created_at=self._clock.now(),
                    message=message,
                    purpose=request.kind,
                ),
                tx.session,
            )

        await self._store.apply(add, consumed=envelope, consumer=queue.name)

    async def replan(self, payment_id: str) -> None:
        """A re-plan timer fired: ask the planner again on the current state."""

        async def again(tx: Transaction) -> None:
            doc = await self._recoveries.get(payment_id, tx.session)
            if doc is None or RecoveryStatus(doc["status"]) in TERMINAL:
                return
            await self._workflow.plan(doc, tx, None)

        await self._store.apply(again)


def _envelope_from(raw: dict[str, Any]) -> Envelope[Any]:
    from recovery_contracts.envelope import MessageType
    from recovery_contracts.messages import envelope_model

    try:
        message_type = MessageType(raw.get("type"))
    except ValueError as error:
        raise ValueError(f"unknown message type {raw.get('type')!r}") from error
    return envelope_model(message_type).model_validate(raw)
