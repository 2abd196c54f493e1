"""PSYNC: an attempt whose outcome is unknown is asked about, never charged blind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import ExecuteRetry
from recovery_contracts.payments import IntentStatus
from recovery_executor.domain.attempt import AttemptStatus
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind
from recovery_runtime.bus import LEASE_MARGIN_SECONDS
from recovery_runtime.testing import consumed

from .builders import from_a_changed_snapshot, payment_sync, planned, recovery_updated
from .fakes import INSTANCE, Executor, not_found, timed_out

QUEUE = "executor.payment-sync"


async def unknown_attempt(executor: Executor) -> Envelope[ExecuteRetry]:
    """An EXECUTE whose charge timed out: its attempt waits for PSYNC."""
    command = planned()
    executor.connector.charge_answers.append(timed_out())
    await executor.send("executor.execute-retry", command)
    executor.publisher.published.clear()
    return command


async def test_a_sync_settles_an_unknown_outcome_without_a_new_charge(executor: Executor) -> None:
    command = await unknown_attempt(executor)

    await executor.send(QUEUE, payment_sync(command))

    assert len(executor.connector.charges) == 1  # the timed-out call only
    [(request, _)] = executor.connector.syncs
    assert request.idempotency_key == executor.connector.charges[0].idempotency_key
    [succeeded] = executor.published(MessageType.PAYMENT_SUCCEEDED)
    assert succeeded.causation_id == command.message_id  # the EXECUTE's outcome, learnt through PSYNC
    [attempt] = executor.attempts.records.values()
    assert (attempt.status, attempt.owner, attempt.resumptions) == (AttemptStatus.SUCCEEDED, INSTANCE, 1)


async def test_a_sync_that_cannot_tell_yet_comes_back_later(executor: Executor) -> None:
    command = await unknown_attempt(executor)
    executor.connector.sync_answers.append(timed_out())

    await executor.send(QUEUE, payment_sync(command))

    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert timer.payload.timer_id.endswith(":2") and timer.payload.message["payload"]["sync_number"] == 2
    assert timer.payload.due_at == executor.clock.now() + timedelta(minutes=1)
    assert len(executor.connector.charges) == 1
    assert next(iter(executor.attempts.records.values())).status is AttemptStatus.UNKNOWN


def refused_caller(status: int) -> ChargeOutcome:
    return ChargeOutcome(ChargeOutcomeKind.CONFIG_ERROR, http_status=status, message="Invalid API Key provided")


@pytest.mark.parametrize("status", [401, 403])
async def test_a_sync_the_connector_refuses_to_answer_keeps_the_outcome_unknown(
    executor: Executor, status: int
) -> None:
    # The merchant's key was revoked or replaced after the charge timed out: the refusal says nothing of the charge,
    # and a final error would let the next attempt charge under a new key (twice, had the first one gone through).
    command = await unknown_attempt(executor)
    executor.connector.sync_answers.append(refused_caller(status))

    await executor.send(QUEUE, payment_sync(command))

    assert next(iter(executor.attempts.records.values())).status is AttemptStatus.UNKNOWN
    assert executor.published(MessageType.PAYMENT_ATTEMPT_FAILED) == []
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert timer.payload.message["payload"]["sync_number"] == 2  # asked again, on the PSYNC schedule


async def test_a_resend_the_connector_refuses_to_answer_keeps_the_outcome_unknown(executor: Executor) -> None:
    # The search found nothing (or could not be read) and the re-send under the same key is refused for the key:
    # the first call may still have charged, so nothing is settled.
    command = await unknown_attempt(executor)
    executor.connector.sync_answers.append(not_found())
    executor.connector.charge_answers.append(refused_caller(401))

    await executor.send(QUEUE, payment_sync(command))

    assert len(executor.connector.charges) == 2
    assert next(iter(executor.attempts.records.values())).status is AttemptStatus.UNKNOWN
    assert executor.published(MessageType.PAYMENT_ATTEMPT_FAILED) == []


async def test_a_call_the_connector_never_saw_is_sent_again_with_the_same_idempotency_key(executor: Executor) -> None:
    command = await unknown_attempt(executor)
    executor.connector.sync_answers.append(not_found())

    await executor.send(QUEUE, payment_sync(command))

    first, again = executor.connector.charges
    assert again.idempotency_key == first.idempotency_key  # a replay at the connector, never a second charge
    assert len(executor.published(MessageType.PAYMENT_SUCCEEDED)) == 1


async def test_a_call_never_seen_for_an_invoice_no_longer_chargeable_is_refused_after_three_syncs(
    executor: Executor,
) -> None:
    command = await unknown_attempt(executor)
    await executor.send(
        "executor.recovery-updated", recovery_updated(command.payload.payment, IntentStatus.CANCELLED, 2)
    )
    executor.connector.sync_answers.extend([not_found(), not_found()])

    await executor.send(QUEUE, payment_sync(command, sync_number=1))
    assert next(iter(executor.attempts.records.values())).status is AttemptStatus.UNKNOWN  # a search may lag
    await executor.send(QUEUE, payment_sync(command, sync_number=3))

    assert len(executor.connector.charges) == 1
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.SKIPPED
    assert attempt.skip_reason == "the invoice was cancelled; the connector never saw the attempt"
    [refused] = executor.published(MessageType.PAYMENT_ATTEMPT_REFUSED)  # the recovery waits for no outcome
    assert refused.causation_id == command.message_id
    assert (refused.payload.attempt_id, refused.payload.reason) == (command.payload.attempt_id, attempt.skip_reason)


async def test_a_call_never_seen_past_the_idempotency_window_goes_to_an_operator(executor: Executor) -> None:
    command = await unknown_attempt(executor)
    executor.clock.advance(timedelta(hours=23))
    executor.connector.sync_answers.append(not_found())

    await executor.send(QUEUE, payment_sync(command))

    [letter] = executor.publisher.dead_letters
    assert letter.queue == QUEUE and "past the connector's idempotency window" in letter.reason
    assert len(executor.connector.charges) == 1


async def test_a_duplicate_sync_republishes_the_outcome_and_asks_nothing(executor: Executor) -> None:
    command = await unknown_attempt(executor)
    sync = payment_sync(command)

    await executor.send(QUEUE, sync)
    duplicates = consumed(QUEUE, "duplicate")
    await executor.send(QUEUE, sync)

    assert len(executor.connector.syncs) == 1
    first, again = executor.published(MessageType.PAYMENT_SUCCEEDED)
    assert again.message_id == first.message_id
    assert consumed(QUEUE, "duplicate") - duplicates == 1  # acknowledged as a duplicate, not applied again


async def test_a_sync_while_another_executor_charges_the_attempt_is_requeued(executor: Executor, requeues: Any) -> None:
    command = planned()
    executor.attempts.held_by_another(command, executor.clock.now())

    await executor.send(QUEUE, payment_sync(command))

    assert requeues == [0] and requeues.waits == [
        60.0 + LEASE_MARGIN_SECONDS
    ]  # at the latest when it may have been abandoned
    assert executor.connector.syncs == [] and executor.connector.charges == []


async def test_a_sync_that_loses_the_take_over_leaves_the_attempt_to_the_winner(
    executor: Executor, requeues: list[int]
) -> None:
    command = await unknown_attempt(executor)
    executor.clock.advance(timedelta(seconds=30))
    # Another executor's PSYNC took the attempt over between this one's read and its compare-and-set.
    executor.attempts.race_next = lambda: executor.attempts.held_by_another(command, executor.clock.now())

    await executor.send(QUEUE, payment_sync(command))

    assert executor.connector.syncs == [] and requeues == []
    assert executor.publisher.published == [] and executor.publisher.dead_letters == []


async def test_a_sync_for_an_attempt_never_started_is_dead_lettered(executor: Executor) -> None:
    await executor.send(QUEUE, payment_sync(planned()))

    [letter] = executor.publisher.dead_letters
    assert letter.reason.startswith("PSYNC for attempt ") and letter.reason.endswith(
        "which this executor never started"
    )
    assert executor.connector.syncs == []


async def test_a_re_send_after_a_sync_sends_the_claimed_parameters_whatever_snapshot_the_psync_carries(
    executor: Executor,
) -> None:
    command = await unknown_attempt(executor)
    executor.connector.sync_answers.append(not_found())
    later = from_a_changed_snapshot(command, amount=3000, merchant_reference_id="invoice_1_revised")

    await executor.send(QUEUE, payment_sync(later))

    first, again = executor.connector.charges
    [(synced, _)] = executor.connector.syncs
    assert again == synced == first  # the same parameters under the same key: a replay, never an idempotency error
    assert again.amount == 2250
