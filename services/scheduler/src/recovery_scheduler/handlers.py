"""Scheduler handlers, one function per message (and the timer loop's re-plan, the operator's resume): load the
recovery, call the domain, save the change it returns with its timers and messages."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog

from recovery_contracts.api.process_tracker import RevenueRecoveryResumeRequest, RevenueRecoveryTask
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    PaymentAttemptFailed,
    PaymentAttemptRefused,
    PaymentSucceeded,
    RecoveryScheduled,
    RecoveryUpdated,
    ScheduleTimer,
)
from recovery_contracts.recovery import RecoveryPayment, RetryAlgorithm
from recovery_runtime.bus import AlreadyApplied, MessageRejected, RetryLater
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction, applied_key
from recovery_scheduler import metrics
from recovery_scheduler.dependencies import CardBudgetChanged, Dependencies, RecoveryExists
from recovery_scheduler.domain.card_budgets import TokenStatusUpdate
from recovery_scheduler.domain.planning import Change, Planning
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.resume import ResumeRefused
from recovery_scheduler.domain.retry_stats import retry_outcomes
from recovery_scheduler.domain.timers import Timer, card_check_timer
from recovery_scheduler.domain.updates import may_plan, needs_its_recovery

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Plans made again at once when the card budget they reserve on changed meanwhile (then the message is retried).
BUDGET_TRIES = 8


class RecoveryNotYetStarted(RetryLater):
    """A `recovery.updated` that needs its recovery (`updates.needs_its_recovery`) came before `recovery.scheduled`:
    handed back after the growing pause until it has come; dead-lettered at the queue's delivery limit (about two
    and a half minutes) if it never does."""


async def recovery_scheduled(deps: Dependencies, envelope: Envelope[RecoveryScheduled], queue: ConsumerQueue) -> None:
    """Start the recovery: inserted once with its first plan and this message's id (the inbox record); a copy
    of the message, or a recovery that exists already, loses the insert."""
    payment = envelope.payload.payment
    key = applied_key(envelope, queue.name)

    async def start(tx: Transaction) -> Change:
        context = await planning(deps, tx, payment, envelope)
        change = Recovery.start(payment, context)
        await save(deps, change, tx, applied=key, planning=context)
        return change

    try:
        change = await applying(deps, start, inbox=False)
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
    change = await _attempt_reported(deps, envelope, queue, lambda r, p: r.attempt_failed(failure, p))
    metrics.attempt_failed(change, failure.outcome.value)


async def attempt_refused(deps: Dependencies, envelope: Envelope[PaymentAttemptRefused], queue: ConsumerQueue) -> None:
    """The executor refused a planned attempt without sending it: plan again later, or record it."""
    refusal = envelope.payload
    change = await _attempt_reported(deps, envelope, queue, lambda r, p: r.attempt_refused(refusal, p))
    metrics.attempt_refused(change)


async def _attempt_reported(
    deps: Dependencies,
    envelope: Envelope[PaymentAttemptFailed] | Envelope[PaymentAttemptRefused],
    queue: ConsumerQueue,
    transition: Callable[[Recovery, Planning], Change],
) -> Change:
    """What the executor reports of an attempt, applied to its recovery once (the inbox), planning with the
    merchant's budgets."""
    report = envelope.payload

    async def record(tx: Transaction) -> Change:
        recovery = await deps.recoveries.get(report.payment_id, tx)
        if recovery is None:
            raise MessageRejected(f"no recovery {report.payment_id} for attempt {report.attempt_number}")
        context = await planning(deps, tx, recovery.payment, envelope)
        change = transition(recovery, context)
        await save(deps, change, tx, planning=context)
        return change

    return await applying(deps, record, consumed=envelope, consumer=queue.name)


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
        await deps.unit_of_work.apply(finish, inbox=False)  # the planned timers too: one transaction
    else:
        # One document, no transaction (the hot path).
        await deps.unit_of_work.write(finish)
    metrics.payment_succeeded(change)


async def recovery_updated(deps: Dependencies, envelope: Envelope[RecoveryUpdated], queue: ConsumerQueue) -> None:
    """The intent changed at intake: another token or failure for the invoice, or an action that stops it."""
    update = envelope.payload

    async def apply(tx: Transaction) -> Change | None:
        recovery = await deps.recoveries.get(update.payment.payment_id, tx)
        if recovery is None and needs_its_recovery(update):
            raise RecoveryNotYetStarted(f"{update.action} for recovery {update.payment.payment_id}, not started yet")
        context = await planning(deps, tx, update.payment, envelope, budgets=may_plan(update))
        change = Recovery.first_seen(update, context) if recovery is None else recovery.updated(update, context)
        if change is not None:
            await save(deps, change, tx, planning=context)
        return change

    change = await applying(deps, apply, consumed=envelope, consumer=queue.name)
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

    async def again(tx: Transaction) -> Change | None:
        recovery = await deps.recoveries.get(payment_id, tx)
        if recovery is None:
            return None
        context = await planning(deps, tx, recovery.payment)
        change = recovery.replanned(context)
        await save(deps, change, tx, planning=context)
        return change

    change = await applying(deps, again)
    if change is not None:
        metrics.replanned(change)


async def resume(
    deps: Dependencies, merchant_id: str, payment_id: str, request: RevenueRecoveryResumeRequest
) -> str | None:
    """Operator: re-trigger EXECUTE for a failed recovery at `schedule_time` (absent: now); returns why not, or
    None."""
    if request.revenue_recovery_task is not RevenueRecoveryTask.EXECUTE_WORKFLOW:
        return f"only {RevenueRecoveryTask.EXECUTE_WORKFLOW.value} can be resumed"

    async def again(tx: Transaction) -> str | None:
        recovery = await deps.recoveries.get(payment_id, tx)
        if recovery is None or recovery.merchant_id != merchant_id:
            return "no such recovery"
        context = await planning(deps, tx, recovery.payment)
        try:
            change = recovery.resumed(request.schedule_time or context.now, context)
        except ResumeRefused as refused:
            return str(refused)
        await save(deps, change, tx, planning=context)
        return None

    return await applying(deps, again)


async def update_token_status(
    deps: Dependencies,
    merchant_id: str,
    token: str,
    hard_declined: bool | None,
    error_code: str | None,
    scheduled_at: datetime | None = None,
) -> TokenStatusUpdate:
    """The merchant's word on its card `token` (`CardBudget.status_updated`), stored by compare-and-set on the
    card's budget with a re-plan due now for each of its recoveries the word asks to plan again (an attempt planned
    on a card it marks, or sooner than it lets the card be tried)."""

    async def apply(tx: Transaction) -> TokenStatusUpdate:
        [budget] = (await deps.card_budgets.read(merchant_id, [token], tx)).values()
        now = deps.clock.now()
        update = budget.status_updated(hard_declined, error_code, now, scheduled_at)
        if update.budget is not None:
            await deps.card_budgets.reserve(update.budget, tx)
            mark = f"merchant-{budget.version + 1}"  # one re-plan per recovery and mark
            await store_timers(deps, [card_check_timer(p, token, mark, now) for p in update.planned_again], tx)
        return update

    update = await applying(deps, apply)
    if update.changed:
        metrics.token_status_updated(hard_declined, scheduled_at)
    return update


async def applying(deps: Dependencies, work: Callable[[Transaction], Awaitable[T]], **options: Any) -> T:
    """The unit of work, run again (planning again) when a card budget it reserves on changed since it was read:
    another recovery of the merchant, here or on another instance, took or gave back a slot on the card."""
    for attempt in range(1, BUDGET_TRIES + 1):
        try:
            return await deps.unit_of_work.apply(work, **options)
        except CardBudgetChanged as changed:
            if attempt == BUDGET_TRIES:
                raise
            log.info("card_budget.changed", budget=str(changed), attempt=attempt)
            # The other writer's transaction commits meanwhile; contenders spread out.
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")


async def planning(
    deps: Dependencies,
    tx: Transaction,
    payment: RecoveryPayment,
    cause: Envelope[Any] | None = None,
    *,
    budgets: bool = True,
) -> Planning:
    """The time now and, for a transition that may plan, the merchant's budgets on the payment's cards and, for
    smart and monitoring when SMART_LEARNED_HOURS is on, its learned hours."""
    card_budgets = learned = None
    if budgets:
        tokens = [t.token for t in payment.tokens]
        card_budgets = await deps.card_budgets.read(payment.merchant_id, tokens, tx)
        if deps.learned_hours and payment.retry.algorithm is not RetryAlgorithm.CASCADING:
            learned = await deps.retry_stats.learned(payment.merchant_id)
    now = deps.clock.now()
    return Planning(now, deps.rng, deps.ids, deps.time_scale, card_budgets, cause, deps.horizon, learned)


async def save(
    deps: Dependencies, change: Change, tx: Transaction, *, applied: str | None = None, planning: Planning | None = None
) -> None:
    """The card budgets first (a reservation another recovery beat stops here: CardBudgetChanged), then the
    recovery (a new one inserted, else compare-and-set: a lost race stops here), then its timers (the new ones
    stored, with a re-plan due now for each other recovery of the merchant planned on a card the change found
    hard-declined, then the planned ones still pending cancelled but those), then its messages; the attempts it adds are
    counted in the retry statistics once it committed. `planning`: what the change was planned with (the budgets
    it read).

    The cancel comes last among the timers' writes, so that this transaction never writes the collection again
    after it changed timers the timer loop may be claiming: SecantusDB, the tests' stand-in, holds the collection
    while a claim retries a write conflict, and a later insert here would wait for the claim, which waits for this
    transaction (docs/operations.md, "SecantusDB's livelock"). On MongoDB the order changes nothing."""
    writes = change.budget_writes(planning, planning.now if planning is not None else deps.clock.now())
    for budget in writes.reserve:
        await deps.card_budgets.reserve(budget, tx)
    for release in writes.release:
        if release.timer_id is None:
            await deps.card_budgets.release(release, tx)
    if change.is_new:
        await deps.recoveries.insert(change.recovery, tx, applied=applied)
    elif change.changed:
        await deps.recoveries.save(change.recovery, tx, applied=applied)
    await store_timers(deps, change.timers, tx, new=change.is_new)
    # The merchant's other recoveries with an attempt planned on a card this change found hard-declined.
    now = deps.clock.now()
    await store_timers(
        deps, [card_check_timer(other, token, change.recovery.payment_id, now) for other, token in writes.checks], tx
    )
    if change.cancels_planned_timers:
        keep = [timer.timer_id for timer in change.timers]
        cancelled = await deps.timers.cancel_planned(change.recovery.payment_id, tx, keep)
        # A planned attempt's slot is given back only if its timer had not fired: cancelled here, still pending.
        for release in writes.release:
            if release.timer_id is not None and release.timer_id in cancelled:
                await deps.card_budgets.release(release, tx)
    # Counted once the change committed (the statistics are written apart, at most once: adapters/retry_stats.py).
    await deps.retry_stats.record(retry_outcomes(change), tx)
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
    "scheduler.attempt-refused": attempt_refused,
    "scheduler.payment-succeeded": payment_succeeded,
    "scheduler.timer-schedule": schedule_timer,
    "scheduler.recovery-updated": recovery_updated,
}
