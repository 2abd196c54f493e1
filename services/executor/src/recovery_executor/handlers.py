"""Executor handlers, one function per message: load, call the domain, save with the messages it emits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from recovery_contracts.api.process_tracker import RevenueRecoveryResumeRequest, RevenueRecoveryTask
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import (
    ConnectorAccountUpdated,
    ExecuteRetry,
    PaymentDisputeLost,
    PaymentSync,
    RecordBack,
    RecoveryUpdated,
)
from recovery_executor import metrics
from recovery_executor.charging import AttemptRun, OutcomePending, charge, charge_guard, held, release_fence, sync
from recovery_executor.dependencies import Dependencies
from recovery_executor.domain.attempt import Attempt, AttemptStatus, Resumption, attempt_key
from recovery_executor.domain.dispute_refunds import (
    RefundNotRecorded,
    record_back_on_its_way,
    refund_record,
    refusal_before_refund,
)
from recovery_executor.domain.ports import PaymentConnector, RecordBackAnswer
from recovery_executor.domain.record_back import (
    RecordBackHistory,
    RecordBackProgress,
    RecordBackStatus,
    record_back_idempotency_key,
    record_key_of,
)
from recovery_runtime.bus import AlreadyApplied, MessageRejected, OutgoingMessage, RetryLater
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)

NO_RECORD_BACK = "no record back for this payment (not recovered by this system, or nothing to record it at)"
NO_REFUND_RECORD = (
    "no refund record of that dispute for this payment (no such dispute lost on it, or nothing to record it at)"
)


async def execute_retry(deps: Dependencies, envelope: Envelope[ExecuteRetry], queue: ConsumerQueue) -> None:
    """One charge per planned attempt: claim the attempt record, then charge; a copy finds the record."""
    command = envelope.payload
    connector = await connector_for(deps, command.payment.payment_connector_id)
    claimed = Attempt.claim(command, envelope.message_id, deps.instance_id, deps.clock.now())
    # The guard's read runs alongside the claim (two round trips, one wait): its facts do not depend on it.
    guard = asyncio.ensure_future(charge_guard(deps, claimed.payment_id))
    guard.add_done_callback(lambda done: done.cancelled() or done.exception())  # never an unretrieved error
    try:
        existing = await deps.attempts.claim(claimed)
    except BaseException:
        guard.cancel()
        raise
    run = AttemptRun(command, envelope.message_id, envelope, queue.name, connector)
    if existing is None:
        await charge(deps, run, claimed, await guard)
        return
    guard.cancel()
    await _resume(deps, run, existing)


async def _resume(deps: Dependencies, run: AttemptRun, existing: Attempt) -> None:
    now = deps.clock.now()
    step = existing.on_execute(run.command.attempt_id, now, deps.abandoned_after)
    if step is Resumption.REPUBLISH:
        await republish(deps, existing)
        log.info("attempt.already_settled", status=existing.status.value)
        if existing.command_message_id == run.cause:
            raise AlreadyApplied(run.cause)
    elif step is Resumption.REOPEN:
        reopened = existing.reopened(run.command, deps.instance_id, now)
        if await deps.attempts.reopen(reopened):
            await charge(deps, run, reopened, await charge_guard(deps, existing.payment_id))
    elif step is Resumption.HELD:
        raise held(existing, now, deps.abandoned_after)
    elif step is Resumption.TAKE_OVER:
        taken = existing.taken_over(deps.instance_id, now)
        if not await deps.attempts.take_over(existing, taken):
            raise OutcomePending(f"attempt {existing.key} was taken over by another executor")
        await sync(deps, run, taken, sync_number=1)
    else:
        log.info("attempt.left", status=existing.status.value, next_sync_at=str(existing.next_sync_at))


async def payment_sync(deps: Dependencies, envelope: Envelope[PaymentSync], queue: ConsumerQueue) -> None:
    """PSYNC on a durable timer: settle an attempt whose outcome was unknown, or look again later."""
    request = envelope.payload
    command = request.execute
    key = attempt_key(command.payment.payment_id, command.attempt_number)
    attempt = await deps.attempts.get(key)
    if attempt is None:
        raise MessageRejected(f"PSYNC for attempt {key}, which this executor never started")
    now = deps.clock.now()
    step = attempt.on_sync(now, deps.abandoned_after)
    if step is Resumption.REPUBLISH:
        await republish(deps, attempt)
        raise AlreadyApplied(envelope.message_id)  # settled already: this PSYNC is a copy or overtaken
    if step is Resumption.HELD:
        raise held(attempt, now, deps.abandoned_after)
    taken = attempt.taken_over(deps.instance_id, now)
    if not await deps.attempts.take_over(attempt, taken):
        log.info("attempt.psync_lost_race")
        return
    connector = await connector_for(deps, command.payment.payment_connector_id)
    run = AttemptRun(command, request.execute_message_id, envelope, queue.name, connector)
    await sync(deps, run, taken, request.sync_number)


async def record_back(deps: Dependencies, envelope: Envelope[RecordBack], queue: ConsumerQueue) -> None:
    """Tell the billing connector about a successful retry, or (`dispute` set) about a dispute lost on it as a
    refund; retried on durable timers until accepted, blocked or abandoned (domain/record_back.py)."""
    request = envelope.payload
    key = record_key_of(request)
    done = await deps.record_backs.get(key)
    if done is not None and done.status is RecordBackStatus.ACCEPTED:
        # A copy (a lost acknowledgement) or a try overtaken by the one the billing system accepted.
        raise AlreadyApplied(envelope.message_id)
    answer = await _record_back_once(deps, request, record_back_idempotency_key(key))
    progress, tried, emitted = RecordBackProgress.after_try(envelope, answer, deps.clock.now(), deps.time_scale)
    dispute_id = progress.dispute_id
    if answer.accepted:
        log.info("record_back.accepted", attempt=request.attempt, status_code=answer.status_code, dispute_id=dispute_id)
    else:
        log.warning(
            "record_back.refused",
            attempt=request.attempt,
            status_code=answer.status_code,
            error=answer.error,
            state=progress.status.value,
            dispute_id=dispute_id,
        )

    async def save(tx: Transaction) -> None:
        await deps.record_backs.save(progress, tried, tx)
        for message in emitted:
            tx.emit(message)

    await deps.unit_of_work.apply(save, consumed=envelope, consumer=queue.name)
    recorded = "payment" if dispute_id is None else "refund"
    metrics.RECORD_BACK_TRIES.labels(progress.billing_connector, recorded, progress.status.value).inc()


async def dispute_lost(deps: Dependencies, envelope: Envelope[PaymentDisputeLost], queue: ConsumerQueue) -> None:
    """A dispute lost on a recovered payment: the refund record at the payment's billing system, started once per
    dispute with its first try (`billing.record-back` with `dispute`); none where the payment was never recorded
    back or its billing system takes no refund (the rules, and why: domain/dispute_refunds.py)."""
    lost = envelope.payload
    payment = await deps.record_backs.get(lost.payment_id)
    owner = payment.merchant_id if payment is not None else None
    if owner is not None and envelope.merchant_id is not None and owner != envelope.merchant_id:
        raise MessageRejected(f"payment {lost.payment_id} is not merchant {envelope.merchant_id}'s")
    if payment is None:
        await _wait_for_the_record_back(deps, lost.payment_id)
    decided = refund_record(payment, envelope, deps.clock.now())
    dispute_id = lost.dispute.dispute_id
    if isinstance(decided, RefundNotRecorded):
        log.info(
            "dispute_refund.none",
            dispute_id=dispute_id,
            billing_connector=decided.billing_connector,
            why=decided.why.value,
            reason=decided.message,
        )
        metrics.DISPUTE_REFUNDS.labels(decided.billing_connector, decided.why.value).inc()
        return
    record, first_try = decided

    async def create(tx: Transaction) -> None:
        if not await deps.record_backs.create(record, tx):
            raise AlreadyApplied(envelope.message_id)  # another copy, or another event of the dispute, came first
        tx.emit(first_try)

    try:
        await deps.unit_of_work.apply(create, consumed=envelope, consumer=queue.name)
    except AlreadyApplied:
        metrics.DISPUTE_REFUNDS.labels(record.billing_connector, "duplicate").inc()
        raise
    log.info("dispute_refund.started", dispute_id=dispute_id, billing_connector=record.billing_connector)
    metrics.DISPUTE_REFUNDS.labels(record.billing_connector, "created").inc()


async def _wait_for_the_record_back(deps: Dependencies, payment_id: str) -> None:
    """RetryLater while the payment's record back may still make its first try (`record_back_on_its_way`): a dispute
    lost right after the success must not be taken for one on a payment never recorded back."""
    facts = await deps.payment_states.charge_facts(payment_id)
    if facts.succeeded_attempt is None:
        return
    succeeded = await deps.attempts.get(attempt_key(payment_id, facts.succeeded_attempt))
    if record_back_on_its_way(succeeded, deps.clock.now()):
        raise RetryLater(f"payment {payment_id} succeeded moments ago: its record back has not made its first try yet")


async def restart_record_back(
    deps: Dependencies, history: RecordBackHistory, request: RevenueRecoveryResumeRequest
) -> RecordBackHistory | str:
    """An operator starts an abandoned or blocked record back (`history`, as the caller read it for the merchant)
    again (PSYNC resumed: a new round of tries, its first at `schedule_time`, absent: now, the same idempotency key;
    nothing is charged): the record back as it then stands, else why not."""
    if request.revenue_recovery_task is not RevenueRecoveryTask.PSYNC_WORKFLOW:
        return f"only {RevenueRecoveryTask.PSYNC_WORKFLOW.value} starts a record back again"
    now = deps.clock.now()
    at = request.schedule_time or now
    restarted = history.progress.restart(now, at, deps.time_scale)
    if isinstance(restarted, str):
        return restarted
    progress, first_try = restarted

    async def save(tx: Transaction) -> bool:
        if not await deps.record_backs.restart(progress, tx):
            return False
        tx.emit(first_try)
        return True

    if not await deps.unit_of_work.apply(save, inbox=False):
        return "the record back changed meanwhile (restarted already, or its last try answered): look again"
    log.info("record_back.restarted", payment_id=progress.payment_id, at=at.isoformat())
    return RecordBackHistory(progress, history.tries)


async def _record_back_once(deps: Dependencies, request: RecordBack, key: str) -> RecordBackAnswer:
    """Through the billing system's API (by connector), else the `custombilling` callback to `record_back_url`; a
    refund through the billing system's API only, once the payment's own record back was accepted."""
    if request.dispute is not None:
        payment = await deps.record_backs.get(request.payment_id)
        waiting = refusal_before_refund(request, payment)
        if waiting is not None:
            return waiting
        if deps.billing_systems is None:
            return RecordBackAnswer(accepted=False, error=f"no recorder for {request.billing_connector}")
        kept = payment.billing_transaction_id if payment is not None else None
        return await deps.billing_systems.record_refund(request, transaction_id=kept, idempotency_key=key)
    if request.billing_connector is not None:
        if deps.billing_systems is None:
            return RecordBackAnswer(accepted=False, error=f"no recorder for {request.billing_connector}")
        return await deps.billing_systems.record_back(request, idempotency_key=key)
    return await deps.billing.record_back(request.url, request.body.model_dump(mode="json"), idempotency_key=key)


async def recovery_updated(deps: Dependencies, envelope: Envelope[RecoveryUpdated], queue: ConsumerQueue) -> None:
    """Keeps the executor's projection of each intent's status, read by the charge guard before every charge."""

    async def project(tx: Transaction) -> None:
        await deps.payment_states.apply(envelope.payload, deps.clock.now(), tx)

    await deps.unit_of_work.apply(project, consumed=envelope, consumer=queue.name)


async def connector_account_updated(
    deps: Dependencies, envelope: Envelope[ConnectorAccountUpdated], queue: ConsumerQueue
) -> None:
    async def project(tx: Transaction) -> None:
        await deps.connector_accounts.apply(envelope.payload, tx)

    await deps.unit_of_work.apply(project, consumed=envelope, consumer=queue.name)


async def connector_for(deps: Dependencies, connector_account_id: str) -> PaymentConnector:
    account = await deps.connector_accounts.get(connector_account_id)
    if account is None:
        # The connector-account projection may lag the command by a moment; past the delivery limit the
        # command is dead-lettered and can be replayed once the account exists.
        raise RuntimeError(f"connector account {connector_account_id} not known to the executor yet")
    refusal = account.refusal_to_charge()
    if refusal is not None:
        raise MessageRejected(refusal)
    return deps.connectors(account)


async def republish(deps: Dependencies, attempt: Attempt) -> None:
    """A finished attempt's outcome message was committed with it. Publishing the same message id again is
    harmless (consumers de-duplicate) and covers a lost publish. Its fence is released again too (a no-op once
    done): the release follows the settle as a write of its own, and one lost (the database failing over between
    the two, the process killed) would leave a charged payment's fence not `paid`, so that a cancel would be
    accepted until the success reached intake."""
    # The release first: a publish that fails (the broker away, a queue not bound yet) must not skip it.
    await release_fence(deps, attempt, paid=attempt.status is AttemptStatus.SUCCEEDED)
    if attempt.outcome_message is not None:
        await deps.publisher.publish(OutgoingMessage.of(attempt.outcome_message))


# Every queue the executor consumes, and its handler (bound to the dependencies by app.py).
HANDLERS: dict[str, Callable[[Dependencies, Envelope[Any], ConsumerQueue], Awaitable[None]]] = {
    "executor.execute-retry": execute_retry,
    "executor.payment-sync": payment_sync,
    "executor.record-back": record_back,
    "executor.recovery-updated": recovery_updated,
    "executor.connector-account-updated": connector_account_updated,
    "executor.dispute-lost": dispute_lost,
}
