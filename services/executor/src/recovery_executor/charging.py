"""Charging an attempt this executor holds: charge or sync at the connector, then settle the attempt, refuse it,
or leave it to PSYNC. Shared by EXECUTE and PSYNC; every save is a compare-and-set on the attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic
from typing import Any

import structlog

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import ExecuteRetry
from recovery_executor.dependencies import Dependencies
from recovery_executor.domain.attempt import Attempt
from recovery_executor.domain.charge_guard import FENCE_REFUSALS, refusal_to_charge
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind
from recovery_executor.domain.follow_up import NOT_FOUND_SYNCS_BEFORE_GIVING_UP
from recovery_executor.domain.ports import PaymentConnector
from recovery_runtime.bus import MessageRejected, RetryLater, lease_wait
from recovery_runtime.payment_fence import FenceVerdict
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)


class OutcomePending(RetryLater):
    """The attempt's outcome is not known here yet (another executor holds it): the message comes back after a
    pause and looks again, at the latest when the holder may have abandoned it (`held`)."""


def held(attempt: Attempt, now: datetime, abandoned_after: timedelta) -> OutcomePending:
    """Another executor is charging `attempt`: look again once it may have abandoned it (then it is taken over)."""
    wait = lease_wait(attempt.abandoned_at(abandoned_after), now)
    return OutcomePending(f"attempt {attempt.key} is being charged by {attempt.owner}", wait)


@dataclass(frozen=True)
class AttemptRun:
    """One message's work on an attempt."""

    command: ExecuteRetry
    cause: str  # the EXECUTE's message id: what the outcome messages say caused them
    consumed: Envelope[Any]  # the message being handled (the EXECUTE, or a PSYNC)
    consumer: str  # its queue
    connector: PaymentConnector


async def charge_guard(deps: Dependencies, payment_id: str) -> str | None:
    """Right before any connector call: why the payment may no longer be charged, or None."""
    return refusal_to_charge(await deps.payment_states.charge_facts(payment_id))


async def charge(deps: Dependencies, run: AttemptRun, attempt: Attempt, refusal: str | None) -> None:
    """`refusal`: the charge guard's answer, asked for right before."""
    sent = await charge_under_lease(deps, run, attempt) if refusal is None else refusal
    if isinstance(sent, str):
        await refuse(deps, run, attempt, sent)
        return
    await settle_or_watch(deps, run, attempt, sent, sync_number=0)


async def charge_under_lease(deps: Dependencies, run: AttemptRun, attempt: Attempt) -> ChargeOutcome | str:
    """The only way a charge reaches the connector: under the payment's charge lease (the fence intake's cancel
    respects), and only within the first half of it, measured from asking for it on this process's monotonic
    clock, whatever pauses the process; or the reason the payment may no longer be charged. A charge not sent
    (the lease held by another attempt, or granted too late) is an unknown outcome: PSYNC looks and re-sends it.
    The lease is kept until the attempt settles (`release_fence`)."""
    asked_at, now = monotonic(), deps.clock.now()
    lease = deps.charge_lease
    verdict = await deps.payment_fences.hold_for_charge(attempt.payment_id, attempt.key, now, now + lease.length)
    if verdict is FenceVerdict.CHARGING:
        return _not_sent("another attempt of the payment holds its charge lease")
    if verdict is not FenceVerdict.GRANTED:
        return FENCE_REFUSALS[verdict]
    left = lease.send_within_seconds - (monotonic() - asked_at)
    if left <= 0:
        return _not_sent("its charge lease was granted too late to send within it")
    try:
        async with asyncio.timeout(left):
            return await run.connector.charge(attempt.charge)
    except TimeoutError:
        return ChargeOutcome(
            ChargeOutcomeKind.UNKNOWN, message=f"cut at the end of the lease's send window ({left:.1f} s)"
        )


def _not_sent(why: str) -> ChargeOutcome:
    return ChargeOutcome(ChargeOutcomeKind.UNKNOWN, message=f"not sent: {why}")


async def release_fence(deps: Dependencies, attempt: Attempt, *, paid: bool) -> None:
    """The attempt settled or was refused: its lease (if held) ends, and a success marks the payment paid."""
    await deps.payment_fences.release(attempt.payment_id, attempt.key, paid=paid)


async def sync(deps: Dependencies, run: AttemptRun, attempt: Attempt, sync_number: int) -> None:
    """PSYNC: ask the connector what became of the attempt before anything else; never charge blind."""
    outcome = await run.connector.sync(attempt.charge, attempt.connector_transaction_id)
    log.warning("attempt.synced", outcome=outcome.kind.value, sync=sync_number)
    if outcome.kind is ChargeOutcomeKind.NOT_FOUND:
        if attempt.idempotency_expired(deps.clock.now()):
            raise MessageRejected(
                f"attempt {attempt.key}: outcome unknown past the connector's idempotency window; "
                "needs an operator (see docs/operations.md)"
            )
        refusal = await charge_guard(deps, attempt.payment_id)
        if refusal is None:
            # The connector never saw the call. Sending it again, the same parameters with the same idempotency
            # key, cannot make a second charge: had the first call arrived meanwhile, the connector replays its
            # result.
            sent = await charge_under_lease(deps, run, attempt)
            refusal, outcome = (sent, outcome) if isinstance(sent, str) else (None, sent)
        if refusal is not None and sync_number >= NOT_FOUND_SYNCS_BEFORE_GIVING_UP:
            await refuse(deps, run, attempt, f"{refusal}; the connector never saw the attempt")
            return
    # Whether from the read or the re-send: a connector refusing the caller leaves the outcome unknown.
    await settle_or_watch(deps, run, attempt, outcome.after_an_unknown(), sync_number)


async def settle_or_watch(
    deps: Dependencies, run: AttemptRun, attempt: Attempt, outcome: ChargeOutcome, sync_number: int
) -> None:
    log.info("attempt.outcome", outcome=outcome.kind.value, decline_code=outcome.decline_code)
    now = deps.clock.now()
    if outcome.is_final:
        settled, messages = attempt.settled(outcome, run.command, run.cause, now)
        # One write, no transaction: the attempt record is the consumed command's inbox (claimed before the call;
        # a copy finds it settled) and carries the messages it emits (embedded outbox).
        await deps.unit_of_work.write(_while_held(deps.attempts.save_settled, settled, messages, "being settled"))
        await release_fence(deps, attempt, paid=outcome.kind is ChargeOutcomeKind.SUCCEEDED)
        return
    unknown, messages = attempt.outcome_unknown(
        outcome, run.command, run.consumed, run.cause, sync_number + 1, now, deps.time_scale
    )
    # The command is acknowledged (no redelivery loop, no dead-lettering): the PSYNC timer brings it back.
    log.warning("attempt.unknown", outcome=outcome.kind.value, message=outcome.message, next_sync=sync_number + 1)
    save = _while_held(deps.attempts.save_unknown, unknown, messages, "its outcome was unknown")
    await deps.unit_of_work.apply(save, consumed=run.consumed, consumer=run.consumer)


async def refuse(deps: Dependencies, run: AttemptRun, attempt: Attempt, reason: str) -> None:
    log.warning("attempt.refused", reason=reason)
    refused, messages = attempt.refused(reason, run.command, run.cause, deps.clock.now())
    save = _while_held(deps.attempts.save_refused, refused, messages, "being refused")
    await deps.unit_of_work.apply(save, consumed=run.consumed, consumer=run.consumer)
    await release_fence(deps, attempt, paid=False)


def _while_held(
    save: Callable[[Attempt, Transaction], Awaitable[bool]],
    attempt: Attempt,
    messages: list[Envelope[Any]],
    doing: str,
) -> Callable[[Transaction], Awaitable[None]]:
    """The unit of work's step: `save` (a compare-and-set while this executor holds the attempt) with the
    messages; a lost compare-and-set means another executor took the attempt over."""

    async def work(tx: Transaction) -> None:
        for message in messages:
            tx.emit(message)
        if not await save(attempt, tx):
            raise OutcomePending(f"attempt {attempt.key} changed hands while {doing}")

    return work
