"""Scheduler handlers, one function per message (and the timer loop's re-plan, the operator's resume): load the
recovery, call the domain, save the change it returns with its timers and messages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from recovery_contracts.api.process_tracker import RevenueRecoveryResumeRequest, RevenueRecoveryTask
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    PaymentAttemptFailed,
    PaymentSucceeded,
    RecoveryScheduled,
    RecoveryUpdated,
    ScheduleTimer,
)
from recovery_contracts.recovery import RecoveryPayment
from recovery_runtime.bus import AlreadyApplied, MessageRejected
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction, applied_key
from recovery_scheduler import metrics
from recovery_scheduler.dependencies import Dependencies, RecoveryExists
from recovery_scheduler.domain.planning import BUDGET_LOOKBACK, Change, Planning
from recovery_scheduler.domain.recovery import Recovery, ResumeRefused, plans_on
from recovery_scheduler.domain.timers import Timer

log = structlog.get_logger(__name__)


async def recovery_scheduled(deps: Dependencies, envelope: Envelope[RecoveryScheduled], queue: ConsumerQueue) -> None:
    """Start the recovery: inserted once with its first plan and this message's id (the inbox record); a copy
    of the message, or a recovery that exists already, loses the insert."""
    payment = envelope.payload.payment
    key = applied_key(envelope, queue.name)

    async def start(tx: Transaction) -> Change:
        change = Recovery.start(payment, await planning(deps, tx, payment, envelope))
        await save(deps, change, tx, applied=key)
        return change

    try:
        change = await deps.unit_of_work.apply(start, inbox=False)
    except RecoveryExists:
        existing = await deps.recoveries.get(payment.payment_id)
        if existing is None:
            raise
        if existing.has_applied(key) or not await deps.recoveries.record_applied(payment.payment_id, key):
            raise AlreadyApplied(envelope.message_id) from None
        log.info("recovery.exists", status=existing.status.value)
        return
    log.info("recovery.started", status=change.recovery.status.value, plan=str(change.recovery.plan))
    metrics.recovery_started(change)


async def attempt_failed(deps: Dependencies, envelope: Envelope[PaymentAttemptFailed], queue: ConsumerQueue) -> None:
    failure = envelope.payload

    async def record(tx: Transaction) -> Change:
        recovery = await deps.recoveries.get(failure.payment_id, tx)
        if recovery is None:
            raise MessageRejected(f"no recovery {failure.payment_id} for attempt {failure.attempt_number}")
        change = recovery.attempt_failed(failure, await planning(deps, tx, recovery.payment, envelope))
        await save(deps, change, tx)
        return change

    change = await deps.unit_of_work.apply(record, consumed=envelope, consumer=queue.name)
    metrics.attempt_failed(change, failure.outcome.value)


async def payment_succeeded(deps: Dependencies, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
    success = envelope.payload
    key = applied_key(envelope, queue.name)
    recovery = await deps.recoveries.get(success.payment_id)
    if recovery is None:
        raise MessageRejected(f"no recovery {success.payment_id}")
    if recovery.has_applied(key):
        raise AlreadyApplied(envelope.message_id)
    change = recovery.payment_succeeded(success, deps.clock.now())

    async def finish(tx: Transaction) -> None:
        # Compare-and-set on the version read above: the applied-message check and the change, one write.
        await save(deps, change, tx, applied=key)

    if change.cancels_planned_timers:
        await deps.unit_of_work.apply(finish, inbox=False)
    else:
        await deps.unit_of_work.write(finish)  # nothing else to write: one document, no transaction
    metrics.payment_succeeded(change)


async def recovery_updated(deps: Dependencies, envelope: Envelope[RecoveryUpdated], queue: ConsumerQueue) -> None:
    """The intent changed at intake: another token or failure for the invoice, or an action that stops it."""
    update = envelope.payload

    async def apply(tx: Transaction) -> Change | None:
        recovery = await deps.recoveries.get(update.payment.payment_id, tx)
        context = await planning(deps, tx, update.payment, envelope, budgets=plans_on(update))
        change = Recovery.first_seen(update, context) if recovery is None else recovery.updated(update, context)
        if change is not None:
            await save(deps, change, tx)
        return change

    change = await deps.unit_of_work.apply(apply, consumed=envelope, consumer=queue.name)
    if change is not None and not change.changed:
        log.info("recovery.update_stale", version=update.version, applied_version=change.recovery.intake_version)


async def schedule_timer(deps: Dependencies, envelope: Envelope[ScheduleTimer], queue: ConsumerQueue) -> None:
    """A timer another service asks for (webhook retries, PSYNC, record back): publish its message when due."""
    request = envelope.payload
    try:
        timer = Timer.requested(request, deps.clock.now())
    except ValueError as error:
        raise MessageRejected(f"timer {request.timer_id}: message is not a valid envelope: {error}") from error

    async def add(tx: Transaction) -> None:
        await store_timers(deps, [timer], tx)

    await deps.unit_of_work.apply(add, consumed=envelope, consumer=queue.name)


async def replan(deps: Dependencies, payment_id: str) -> None:
    """A re-plan timer fired (the timer loop): ask the planner again on the current state."""

    async def again(tx: Transaction) -> None:
        recovery = await deps.recoveries.get(payment_id, tx)
        if recovery is not None:
            await save(deps, recovery.replanned(await planning(deps, tx, recovery.payment)), tx)

    await deps.unit_of_work.apply(again)


async def resume(
    deps: Dependencies, merchant_id: str, payment_id: str, request: RevenueRecoveryResumeRequest
) -> str | None:
    """Operator: re-trigger EXECUTE for a failed recovery at `schedule_time`; returns why not, or None."""
    if request.revenue_recovery_task is not RevenueRecoveryTask.EXECUTE_WORKFLOW:
        return f"only {RevenueRecoveryTask.EXECUTE_WORKFLOW.value} can be resumed"

    async def again(tx: Transaction) -> str | None:
        recovery = await deps.recoveries.get(payment_id, tx)
        if recovery is None or recovery.merchant_id != merchant_id:
            return "no such recovery"
        try:
            change = recovery.resumed(request.schedule_time, await planning(deps, tx, recovery.payment))
        except ResumeRefused as refused:
            return str(refused)
        await save(deps, change, tx)
        return None

    return await deps.unit_of_work.apply(again)


async def planning(
    deps: Dependencies,
    tx: Transaction,
    payment: RecoveryPayment,
    cause: Envelope[Any] | None = None,
    *,
    budgets: bool = True,
) -> Planning:
    """The time now and, for a transition that may plan, the attempts other recoveries made on the same cards."""
    now = deps.clock.now()
    others = None
    if budgets:
        tokens = [t.token for t in payment.tokens]
        others = await deps.recoveries.other_attempts_at(tokens, payment.payment_id, now - BUDGET_LOOKBACK, tx)
    return Planning(now, deps.rng, deps.ids, deps.time_scale, others, cause)


async def save(deps: Dependencies, change: Change, tx: Transaction, *, applied: str | None = None) -> None:
    """The recovery first (a new one inserted, else compare-and-set: a lost race stops here), then its timers
    (the planned ones still pending cancelled before the new ones are stored), then its messages."""
    if change.is_new:
        await deps.recoveries.insert(change.recovery, tx, applied=applied)
    elif change.changed:
        await deps.recoveries.save(change.recovery, tx, applied=applied)
    if change.cancels_planned_timers:
        await deps.timers.cancel_planned(change.recovery.payment_id, tx)
    await store_timers(deps, change.timers, tx, new=change.is_new)
    for message in change.messages:
        tx.emit(message)


async def store_timers(deps: Dependencies, timers: Sequence[Timer], tx: Transaction, *, new: bool = False) -> None:
    """Store timers (`new`: of a recovery inserted in this transaction, so none can exist yet: no look-up); each
    one stored is reported to the timer loop once committed, so one due before its next poll fires when due."""
    for timer in timers:
        if new:
            await deps.timers.add_new(timer, tx)
        elif not await deps.timers.add(timer, tx):
            continue
        tx.after_commit(functools.partial(deps.timer_stored, timer.due_at))


# Every queue the scheduler consumes, and its handler (bound to the dependencies by app.py).
HANDLERS: dict[str, Callable[[Dependencies, Envelope[Any], ConsumerQueue], Awaitable[None]]] = {
    "scheduler.recovery-scheduled": recovery_scheduled,
    "scheduler.attempt-failed": attempt_failed,
    "scheduler.payment-succeeded": payment_succeeded,
    "scheduler.timer-schedule": schedule_timer,
    "scheduler.recovery-updated": recovery_updated,
}
