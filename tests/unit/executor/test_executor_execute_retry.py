"""EXECUTE: one charge per planned attempt, whatever arrives twice, races or times out."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import IntentStatus
from recovery_executor.domain.attempt import AttemptStatus
from recovery_runtime.bus import LEASE_MARGIN_SECONDS

from .builders import connector_account, from_a_changed_snapshot, payment_sync, planned, recovery_updated
from .fakes import INSTANCE, OTHER_INSTANCE, Executor, declined, idempotency_error, not_found, timed_out

QUEUE = "executor.execute-retry"


async def test_a_new_attempt_is_charged_once_and_its_success_reported(executor: Executor) -> None:
    command = planned()
    payment = command.payload.payment

    await executor.send(QUEUE, command)

    [request] = executor.connector.charges
    assert request.idempotency_key == f"recovery:{payment.payment_id}:attempt:1"
    assert (request.amount, request.currency, request.payment_method) == (2250, "USD", "pm_card_visa")
    [succeeded] = executor.published(MessageType.PAYMENT_SUCCEEDED)
    assert succeeded.causation_id == command.message_id
    assert succeeded.payload.connector_transaction_id == "pi_approved"
    assert succeeded.payload.payment.status == IntentStatus.SUCCEEDED
    attempt = executor.attempts.records[f"{payment.payment_id}:1"]
    assert (attempt.status, attempt.owner) == (AttemptStatus.SUCCEEDED, INSTANCE)
    assert attempt.outcome_message is not None and attempt.outcome_message.message_id == succeeded.message_id
    assert executor.published(MessageType.RECORD_BACK) == []


async def test_a_success_is_recorded_back_when_the_billing_connector_asked_for_it(executor: Executor) -> None:
    command = planned(record_back_url="https://billing.example/record-back")

    await executor.send(QUEUE, command)

    [request] = executor.published(MessageType.RECORD_BACK)
    assert request.payload.url == "https://billing.example/record-back"
    assert request.payload.body.connector_transaction_id == "pi_approved"
    assert request.causation_id == command.message_id


async def test_a_duplicate_command_charges_nothing_and_republishes_the_known_outcome(
    executor: Executor, requeues: list[int]
) -> None:
    command = planned()

    await executor.send(QUEUE, command)
    await executor.send(QUEUE, command)  # redelivered
    await executor.send(QUEUE, command.model_copy(update={"message_id": "another-copy"}))

    assert len(executor.connector.charges) == 1
    first, *again = executor.published(MessageType.PAYMENT_SUCCEEDED)
    assert [m.message_id for m in again] == [first.message_id] * 2
    assert requeues == [] and executor.publisher.dead_letters == []


async def test_a_decline_is_reported_with_its_codes(executor: Executor) -> None:
    executor.connector.charge_answers.append(declined("do_not_honor"))

    await executor.send(QUEUE, planned())

    [failed] = executor.published(MessageType.PAYMENT_ATTEMPT_FAILED)
    assert (failed.payload.outcome, failed.payload.decline_code, failed.payload.error_code) == (
        "declined",
        "do_not_honor",
        "card_declined",
    )
    assert failed.payload.advice_code == "try_again_later"
    [attempt] = executor.attempts.records.values()
    assert (attempt.status, attempt.decline_code) == (AttemptStatus.DECLINED, "do_not_honor")


async def test_an_unknown_outcome_is_left_to_psync_on_a_timer_and_a_copy_does_not_charge(executor: Executor) -> None:
    executor.connector.charge_answers.append(timed_out())
    command = planned()
    key = f"{command.payload.payment.payment_id}:1"

    await executor.send(QUEUE, command)
    await executor.send(QUEUE, command.model_copy(update={"message_id": "another-copy"}))

    assert len(executor.connector.charges) == 1
    assert executor.published(MessageType.PAYMENT_SUCCEEDED) == []
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert (timer.payload.timer_id, timer.payload.kind) == (f"psync:{key}:1", "payment_sync")
    assert timer.payload.due_at == executor.clock.now() + timedelta(seconds=30)
    assert timer.payload.message["payload"]["execute_message_id"] == command.message_id
    assert timer.payload.message["payload"]["sync_number"] == 1
    assert executor.attempts.records[key].status is AttemptStatus.UNKNOWN


async def test_an_attempt_another_executor_claimed_first_is_not_charged_here(
    executor: Executor, requeues: list[int]
) -> None:
    command = planned()
    mine = f"{command.payload.payment.payment_id}:1"
    # The other executor's insert lands between this one's guard read and its claim.
    executor.attempts.race_next = lambda: executor.attempts.held_by_another(command, executor.clock.now())

    await executor.send(QUEUE, command)

    assert executor.connector.charges == []
    assert requeues == [0]  # looked at again after a pause: by then the other executor settled it
    assert executor.attempts.records[mine].owner == OTHER_INSTANCE


async def test_a_copy_of_the_command_comes_back_when_the_executor_holding_the_attempt_may_have_abandoned_it(
    executor: Executor, requeues: Any
) -> None:
    command = planned()
    # Another executor has been charging it for 58 s; ABANDONED_ATTEMPT_SECONDS is 60.
    executor.attempts.held_by_another(command, executor.clock.now() - timedelta(seconds=58))

    await executor.send(QUEUE, command)

    assert executor.connector.charges == [] and executor.connector.syncs == []
    assert requeues.waits == [2.0 + LEASE_MARGIN_SECONDS]  # then taken over (below) unless it settled meanwhile


async def test_an_abandoned_attempt_is_taken_over_and_synced_never_charged_blind(executor: Executor) -> None:
    command = planned()
    executor.attempts.held_by_another(command, executor.clock.now() - timedelta(minutes=5))  # it died mid-call

    await executor.send(QUEUE, command)

    assert executor.connector.charges == []
    [(request, _)] = executor.connector.syncs
    assert request.idempotency_key.endswith(":attempt:1")
    [attempt] = executor.attempts.records.values()
    assert (attempt.status, attempt.owner, attempt.resumptions) == (AttemptStatus.SUCCEEDED, INSTANCE, 1)
    assert len(executor.published(MessageType.PAYMENT_SUCCEEDED)) == 1


async def test_a_settlement_that_lost_the_attempt_to_a_take_over_is_requeued(executor: Executor, requeues: Any) -> None:
    command = planned()
    key = f"{command.payload.payment.payment_id}:1"
    # The call outlasted `abandoned_after`: another executor took the attempt over meanwhile.
    executor.connector.while_charging = lambda: executor.attempts.held_by_another(command, executor.clock.now())

    await executor.send(QUEUE, command)

    assert requeues == [0]
    assert executor.published(MessageType.PAYMENT_SUCCEEDED) == []  # the executor holding it now settles it
    assert executor.attempts.records[key].status is AttemptStatus.CHARGING


async def test_an_invoice_no_longer_chargeable_is_refused_and_a_later_plan_charges(executor: Executor) -> None:
    first = planned()
    payment = first.payload.payment
    await executor.send("executor.recovery-updated", recovery_updated(payment, IntentStatus.PROCESSING, 2))

    await executor.send(QUEUE, first)

    assert executor.connector.charges == []
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.SKIPPED
    assert attempt.skip_reason == "the billing system reports a payment in progress"
    # Told, so that the recovery does not wait for an outcome; nothing else is sent.
    [refused] = executor.published(MessageType.PAYMENT_ATTEMPT_REFUSED)
    assert len(executor.publisher.published) == 1 and refused.causation_id == first.message_id
    assert (refused.payload.attempt_id, refused.payload.attempt_number, refused.payload.token) == (
        first.payload.attempt_id,
        1,
        "pm_card_visa",
    )
    assert refused.payload.reason == "the billing system reports a payment in progress"

    # Resumed: the scheduler plans the same attempt number again, under a new attempt id.
    await executor.send("executor.recovery-updated", recovery_updated(payment, IntentStatus.FAILED, 3))
    await executor.send(QUEUE, planned(payment))
    assert len(executor.connector.charges) == 1
    assert len(executor.published(MessageType.PAYMENT_SUCCEEDED)) == 1


async def test_a_payment_with_a_succeeded_attempt_is_not_charged_again(executor: Executor) -> None:
    payment = planned().payload.payment
    await executor.send(QUEUE, planned(payment, attempt_number=1))

    await executor.send(QUEUE, planned(payment, attempt_number=2))

    assert len(executor.connector.charges) == 1
    assert executor.attempts.records[f"{payment.payment_id}:2"].skip_reason == (
        "attempt 1 of this payment already succeeded"
    )


async def test_a_disabled_or_unsupported_connector_account_dead_letters_the_command(executor: Executor) -> None:
    await executor.send("executor.connector-account-updated", connector_account(2, disabled=True))
    await executor.send(QUEUE, planned())
    await executor.send("executor.connector-account-updated", connector_account(3, connector_name="adyen"))
    await executor.send(QUEUE, planned())

    assert executor.connector.charges == []
    assert [(d.queue, d.reason) for d in executor.publisher.dead_letters] == [
        (QUEUE, "connector account mca_payment is disabled"),
        (QUEUE, "connector 'adyen' is not supported for charges"),
    ]
    assert executor.attempts.records == {}


async def test_a_connector_account_not_known_yet_requeues_the_command(executor: Executor, requeues: list[int]) -> None:
    await executor.send(QUEUE, planned(payment_connector_id="mca_not_projected_yet"))

    assert requeues == [0]
    assert executor.connector.charges == [] and executor.publisher.dead_letters == []


async def test_an_invalid_command_is_dead_lettered_with_the_reason(executor: Executor) -> None:
    command = planned().model_dump(mode="json")
    command["payload"]["attempt_number"] = 0

    await executor.send(QUEUE, json.dumps(command).encode())

    [letter] = executor.publisher.dead_letters
    assert letter.queue == QUEUE
    assert "payload.attempt_number: Input should be greater than or equal to 1" in letter.reason
    assert executor.connector.charges == []


async def test_an_idempotency_error_is_an_unknown_outcome_left_to_psync_never_a_failed_attempt(
    executor: Executor,
) -> None:
    command = planned()
    key = f"{command.payload.payment.payment_id}:1"
    # The key was first used with other parameters (an earlier call under it): that call may have charged.
    executor.connector.charge_answers.append(idempotency_error())

    await executor.send(QUEUE, command)

    assert executor.attempts.records[key].status is AttemptStatus.UNKNOWN
    assert executor.published(MessageType.PAYMENT_ATTEMPT_FAILED) == []  # the next attempt would use a new key
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert timer.payload.timer_id == f"psync:{key}:1"

    await executor.send("executor.payment-sync", payment_sync(command))

    [(synced, _)] = executor.connector.syncs
    assert synced == executor.connector.charges[0]
    assert len(executor.connector.charges) == 1
    [succeeded] = executor.published(MessageType.PAYMENT_SUCCEEDED)
    assert succeeded.causation_id == command.message_id
    assert executor.attempts.records[key].status is AttemptStatus.SUCCEEDED


async def test_a_take_over_sends_the_parameters_of_the_claim_not_those_of_a_later_snapshot(
    executor: Executor,
) -> None:
    command = planned()
    claimed = executor.attempts.held_by_another(command, executor.clock.now() - timedelta(minutes=5))  # it died
    later_copy = from_a_changed_snapshot(command, amount=3000, merchant_reference_id="invoice_1_revised")
    executor.connector.sync_answers.append(not_found())  # its call never reached the connector

    await executor.send(QUEUE, later_copy)

    [(synced, _)] = executor.connector.syncs
    [sent] = executor.connector.charges
    assert (sent.amount, sent.metadata["merchant_reference_id"]) == (2250, "invoice_1")
    assert synced == sent == claimed.charge
    assert len(executor.published(MessageType.PAYMENT_SUCCEEDED)) == 1
