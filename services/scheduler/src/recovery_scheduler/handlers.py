"""Scheduler handlers: one per message; each is one transaction through the unit of work."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from recovery_contracts.api.process_tracker import RevenueRecoveryResumeRequest, RevenueRecoveryTask
from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    PaymentAttemptFailed,
    PaymentSucceeded,
    RecoveryScheduled,
    RecoveryUpdated,
    ScheduleTimer,
)
from recovery_contracts.recovery import RecoveryPayment
from recovery_runtime.bus import AlreadyApplied, MessageRejected, OutgoingMessage
from recovery_runtime.clock import Clock
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction, applied_key, mark_applied, was_applied
from recovery_scheduler import metrics
from recovery_scheduler.adapters.recoveries import RecoveryRepository
from recovery_scheduler.adapters.timers import TimerKind, TimerRepository, timer_document
from recovery_scheduler.domain import AttemptOutcome, DeclineClass, classify_decline
from recovery_scheduler.workflow import TERMINAL, RecoveryStatus, Workflow, new_recovery_document, note

log = structlog.get_logger(__name__)


def count_end(algorithm: str, before: str, after: str) -> None:
    """Count a recovery's end once: when a committed change moved it from open to succeeded or failed."""
    if RecoveryStatus(before) in TERMINAL:
        return
    if after in (RecoveryStatus.SUCCEEDED.value, RecoveryStatus.FAILED.value):
        metrics.RECOVERIES_FINISHED.labels(algorithm, after).inc()


class SchedulerHandlers:
    def __init__(
        self,
        store: MessageStore,
        recoveries: RecoveryRepository,
        timers: TimerRepository,
        workflow: Workflow,
        clock: Clock,
        timer_stored: Callable[[datetime], None] | None = None,
    ) -> None:
        self._store = store
        self._recoveries = recoveries
        self._timers = timers
        self._workflow = workflow
        self._clock = clock
        self._timer_stored = timer_stored

    async def recovery_scheduled(self, envelope: Envelope[RecoveryScheduled], queue: ConsumerQueue) -> None:
        payment = envelope.payload.payment
        key = applied_key(envelope, queue.name)

        async def start(tx: Transaction) -> None:
            # The recovery document is inserted once, with its first plan and this message's id in it (the inbox
            # record): a copy of the message, or a recovery that exists already, fails the insert (duplicate key).
            doc = new_recovery_document(payment, self._clock.now())
            mark_applied(doc, key)
            await self._workflow.plan(doc, tx, envelope.message_id, new=True)
            log.info("recovery.started", status=doc["status"], plan=str(doc.get("plan")))
            seen.update(algorithm=doc["algorithm"], after=doc["status"])

        seen: dict[str, Any] = {}
        try:
            await self._store.apply(start, inbox=False)
        except DuplicateKeyError:
            seen.clear()
            existing = await self._recoveries.get(payment.payment_id)
            if existing is None:
                raise  # a timer id in use without its recovery: not expected; retried, then dead-lettered
            if was_applied(existing, key) or not await self._recoveries.record_applied(payment.payment_id, key):
                raise AlreadyApplied(envelope.message_id) from None
            log.info("recovery.exists", status=existing["status"])
        if seen:
            metrics.RECOVERIES_STARTED.labels(seen["algorithm"]).inc()
            count_end(seen["algorithm"], RecoveryStatus.SCHEDULED.value, seen["after"])

    async def attempt_failed(self, envelope: Envelope[PaymentAttemptFailed], queue: ConsumerQueue) -> None:
        failure = envelope.payload

        async def record(tx: Transaction) -> None:
            doc = await self._recoveries.get(failure.payment_id, tx.session)
            if doc is None:
                raise MessageRejected(f"no recovery {failure.payment_id} for attempt {failure.attempt_number}")
            if any(a["number"] == failure.attempt_number for a in doc["attempts"]):
                return
            before = doc["status"]
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
            seen.update(algorithm=doc["algorithm"], decline_class=decline_class.value, before=before)
            if RecoveryStatus(doc["status"]) not in TERMINAL:
                await self._workflow.plan(doc, tx, envelope.message_id)
            else:
                await self._recoveries.save(doc, tx.session)
            seen["after"] = doc["status"]

        seen: dict[str, Any] = {}
        await self._store.apply(record, consumed=envelope, consumer=queue.name)
        if seen:
            metrics.RETRIES.labels(seen["algorithm"], failure.outcome.value).inc()
            metrics.DECLINES.labels(seen["decline_class"]).inc()
            count_end(seen["algorithm"], seen["before"], seen["after"])

    async def payment_succeeded(self, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
        success = envelope.payload
        key = applied_key(envelope, queue.name)
        read = await self._recoveries.get(success.payment_id)
        if read is None:
            raise MessageRejected(f"no recovery {success.payment_id}")
        if was_applied(read, key):
            raise AlreadyApplied(envelope.message_id)
        plan = read.get("plan") or {}
        # The plan was this very attempt: its timer has fired, and a plan has one timer, so nothing is pending
        # (a copy of a fired timer only replays the attempt, which the executor has settled). Otherwise cancel.
        cancel = not (plan.get("kind") == "attempt" and plan.get("attempt_number") == success.attempt_number)

        async def finish(tx: Transaction) -> None:
            doc = copy.deepcopy(read)  # a transaction retried after a transient error starts from the same read
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
            seen.update(algorithm=doc["algorithm"], before=doc["status"])
            if doc["status"] in (RecoveryStatus.CANCELLED.value, RecoveryStatus.SUCCEEDED.value):
                # An attempt in flight when the invoice was cancelled or paid elsewhere: money moved, so the
                # recovery is recorded as ours, and the conflict is visible to operators (a refund decision).
                note(
                    doc,
                    now,
                    "conflict",
                    f"attempt {success.attempt_number} succeeded after the recovery ended "
                    f"({doc.get('business_status')}): the invoice may have been paid twice",
                )
            doc["status"] = RecoveryStatus.SUCCEEDED.value
            doc["business_status"] = "COMPLETED_EXECUTE_TASK"
            doc["paused"] = False
            doc["plan"] = None
            doc["ended_at"] = now
            doc["updated_at"] = now
            note(doc, now, "ended", f"attempt {success.attempt_number} succeeded", outcome="succeeded")
            mark_applied(doc, key)
            if cancel:
                await self._timers.cancel_pending(success.payment_id, tx.session)
            # Compare-and-set on the version read above: the applied-message check and the change, one write.
            await self._recoveries.save(doc, tx.session)

        seen: dict[str, Any] = {}
        if cancel:
            await self._store.apply(finish, inbox=False)
        else:
            await self._store.write(finish)
        if seen:
            metrics.RETRIES.labels(seen["algorithm"], "succeeded").inc()
            count_end(seen["algorithm"], seen["before"], RecoveryStatus.SUCCEEDED.value)

    async def recovery_updated(self, envelope: Envelope[RecoveryUpdated], queue: ConsumerQueue) -> None:
        """The intent changed at intake: another token or failure for the invoice, or an action that stops it."""
        update = envelope.payload

        async def apply(tx: Transaction) -> None:
            doc = await self._recoveries.get(update.payment.payment_id, tx.session)
            if doc is None:
                await self._first_seen(update, tx, envelope.message_id)
                return
            if update.version <= doc.get("intake_version", 0):
                log.info("recovery.update_stale", version=update.version, seen=doc.get("intake_version"))
                return
            doc["intake_version"] = update.version
            await self._apply_update(doc, update, tx, envelope.message_id)

        await self._store.apply(apply, consumed=envelope, consumer=queue.name)

    async def _first_seen(self, update: RecoveryUpdated, tx: Transaction, causation_id: str) -> None:
        now = self._clock.now()
        doc = new_recovery_document(update.payment, now)
        doc["intake_version"] = update.version
        action = update.action
        if action == RecoveryAction.SCHEDULE_FAILED_PAYMENT:
            await self._workflow.plan(doc, tx, causation_id, new=True)
            return
        # A stop or a pause seen before the recovery itself: a tombstone, so that a late recovery.scheduled
        # finds the recovery and cannot start charging a cancelled or paid invoice.
        if action == RecoveryAction.CANCEL_INVOICE:
            doc.update(status=RecoveryStatus.CANCELLED.value, business_status="CANCELLED_BY_BILLING_CONNECTOR")
        elif action == RecoveryAction.SUCCESS_PAYMENT_EXTERNAL:
            doc.update(status=RecoveryStatus.SUCCEEDED.value, business_status="COMPLETED_BY_EXTERNAL_PAYMENT")
        elif action == RecoveryAction.PENDING_PAYMENT:
            doc.update(status=RecoveryStatus.AWAITING_BILLING.value, paused=True)
        else:
            return
        note(doc, now, "billing_system_action", f"{action} before any retry was planned")
        await self._recoveries.insert(doc, tx.session)

    async def _apply_update(
        self, doc: dict[str, Any], update: RecoveryUpdated, tx: Transaction, causation_id: str
    ) -> None:
        now = self._clock.now()
        merge_snapshot(doc, update.payment, now)
        if update.tokens_added:
            note(doc, now, "tokens_added", f"the customer's saved tokens now include {', '.join(update.tokens_added)}")
        status = RecoveryStatus(doc["status"])
        action = update.action
        if status in TERMINAL and not (
            action == RecoveryAction.SCHEDULE_FAILED_PAYMENT and status is RecoveryStatus.FAILED and update.tokens_added
        ):
            note(doc, now, "billing_system_action", f"{action} after the recovery ended ({status.value}): recorded")
            await self._recoveries.save(doc, tx.session)
            return
        if action == RecoveryAction.CANCEL_INVOICE:
            await self._workflow.stop(
                doc,
                tx,
                RecoveryStatus.CANCELLED,
                "CANCELLED_BY_BILLING_CONNECTOR",
                "the billing system cancelled the invoice: pending retries stopped",
            )
        elif action == RecoveryAction.SUCCESS_PAYMENT_EXTERNAL:
            await self._workflow.stop(
                doc,
                tx,
                RecoveryStatus.SUCCEEDED,
                "COMPLETED_BY_EXTERNAL_PAYMENT",
                "the invoice was paid outside this system: pending retries stopped",
            )
        elif action == RecoveryAction.PENDING_PAYMENT:
            await self._workflow.pause(doc, tx, "the billing system reports a payment in progress: waiting")
        elif action == RecoveryAction.SCHEDULE_FAILED_PAYMENT:
            await self._replan_after_failure(doc, status, tx, causation_id)
        else:
            note(doc, now, "billing_system_action", f"{action}: recorded")
            await self._recoveries.save(doc, tx.session)

    async def _replan_after_failure(
        self, doc: dict[str, Any], status: RecoveryStatus, tx: Transaction, causation_id: str
    ) -> None:
        """Another failure reported for the invoice: resume a paused recovery, reopen one that failed for want of
        a usable token now that there is a new one, or let the running plan pick the news up at its next step."""
        now = self._clock.now()
        plan = doc.get("plan") or {}
        if status is RecoveryStatus.FAILED:
            doc.update(status=RecoveryStatus.SCHEDULED.value, business_status=None, ended_at=None)
            note(doc, now, "reopened", "a new token arrived for a recovery that had failed")
        elif status in (RecoveryStatus.SCHEDULED,) and plan.get("kind") == "attempt" and not doc.get("paused"):
            note(doc, now, "billing_system_failure", "recorded; the planned attempt stands")
            await self._recoveries.save(doc, tx.session)
            return
        else:
            note(doc, now, "billing_system_failure", "the billing system reports another failure: planning again")
        doc["paused"] = False
        await self._timers.cancel_pending(doc["_id"], tx.session)
        await self._workflow.plan(doc, tx, causation_id)

    async def schedule_timer(self, envelope: Envelope[ScheduleTimer], queue: ConsumerQueue) -> None:
        request = envelope.payload
        try:
            message = OutgoingMessage.of(_envelope_from(request.message))
        except ValueError as error:
            raise MessageRejected(f"timer {request.timer_id}: message is not a valid envelope: {error}") from error

        async def add(tx: Transaction) -> None:
            added = await self._timers.add(
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
            if added and self._timer_stored is not None:
                tx.after_commit(functools.partial(self._timer_stored, request.due_at))

        await self._store.apply(add, consumed=envelope, consumer=queue.name)

    async def resume(self, merchant_id: str, payment_id: str, request: RevenueRecoveryResumeRequest) -> str | None:
        """Operator: re-trigger EXECUTE for a failed recovery at `schedule_time`; returns why not, or None."""
        if request.revenue_recovery_task is not RevenueRecoveryTask.EXECUTE_WORKFLOW:
            return f"only {RevenueRecoveryTask.EXECUTE_WORKFLOW.value} can be resumed"

        async def again(tx: Transaction) -> str | None:
            doc = await self._recoveries.get(payment_id, tx.session)
            if doc is None or doc["merchant_id"] != merchant_id:
                return "no such recovery"
            if doc["status"] != RecoveryStatus.FAILED.value:
                return f"only a failed recovery can be resumed; this one is {doc['status']}"
            note(doc, self._clock.now(), "resume_requested", "an operator re-triggered EXECUTE")
            return await self._workflow.resume(doc, tx, request.schedule_time, None)

        return await self._store.apply(again)

    async def replan(self, payment_id: str) -> None:
        """A re-plan timer fired: ask the planner again on the current state."""

        async def again(tx: Transaction) -> None:
            doc = await self._recoveries.get(payment_id, tx.session)
            if doc is None or RecoveryStatus(doc["status"]) in TERMINAL:
                return
            await self._workflow.plan(doc, tx, None)

        await self._store.apply(again)


def merge_snapshot(doc: dict[str, Any], payment: RecoveryPayment, now: Any) -> None:
    """Take intake's newer snapshot; a token whose card data changed (new expiry) lifts an earlier `fix` block."""
    before = {t["token"]: t for t in doc["snapshot"].get("tokens", [])}
    updated = doc.setdefault("card_updated_at", {})
    for token in payment.tokens:
        old = before.get(token.token)
        card = ("card_exp_month", "card_exp_year", "last_four_digits")
        if old is not None and any(old.get(field) != getattr(token, field) for field in card):
            updated[token.token] = now
    doc["snapshot"] = payment.model_dump(mode="json")


def _envelope_from(raw: dict[str, Any]) -> Envelope[Any]:
    from recovery_contracts.envelope import MessageType
    from recovery_contracts.messages import envelope_model

    try:
        message_type = MessageType(raw.get("type"))
    except ValueError as error:
        raise ValueError(f"unknown message type {raw.get('type')!r}") from error
    return envelope_model(message_type).model_validate(raw)
