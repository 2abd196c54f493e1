"""The charge side of the payment fence: no charge is sent once intake accepted a cancel, and while a charge is
in flight (or its outcome unknown) the fence refuses the cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from recovery_contracts.envelope import Envelope, MessageType
from recovery_executor.domain.attempt import AttemptStatus
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.payment_fence import FenceVerdict, PaymentFence

from .builders import payment_sync, planned
from .fakes import Executor, declined, not_found, timed_out

QUEUE = "executor.execute-retry"


async def test_a_cancel_accepted_before_the_charge_stops_it_though_the_projection_has_not_heard_of_it(
    executor: Executor,
) -> None:
    command = planned()
    payment_id = command.payload.payment.payment_id
    # Intake's tombstone: its recovery.updated has not reached the executor's projection yet.
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.GRANTED

    await executor.send(QUEUE, command)

    assert executor.connector.charges == []
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.SKIPPED
    assert attempt.skip_reason == "the invoice was closed (intake accepted its cancel, or its payment elsewhere)"
    assert executor.published(MessageType.PAYMENT_SUCCEEDED) == []


async def test_the_lease_is_held_during_the_call_refusing_a_cancel_and_a_success_fences_the_payment_off(
    executor: Executor,
) -> None:
    command = planned()
    payment_id = command.payload.payment.payment_id
    during: list[Any] = []
    now = executor.clock.now()
    executor.connector.while_charging = lambda: during.append(executor.fences.fences[payment_id])

    await executor.send(QUEUE, command)

    [held] = during
    assert held.holder == f"{payment_id}:1" and held.lease_until == now + timedelta(seconds=60)
    assert held.cancel(now)[0] is FenceVerdict.CHARGING
    after = executor.fences.fences[payment_id]
    assert (after.holder, after.paid) == (None, True)
    assert (await executor.fences.cancel(payment_id, now)).verdict is FenceVerdict.PAID


async def settled_with_its_release_lost(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> Envelope[Any]:
    """A planned attempt charged and settled, its fence release failing once (handed back to the queue by the
    pipeline, the error logged); the release works again afterwards. The command."""
    command = planned()
    release = executor.fences.release

    async def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the primary stepped down")

    monkeypatch.setattr(executor.fences, "release", lost)
    await executor.send(QUEUE, command)
    monkeypatch.setattr(executor.fences, "release", release)
    return command


async def test_a_fence_release_lost_after_a_success_is_made_by_the_commands_next_copy(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settle is written, then the release fails (the database failing over between the two writes): the
    # command's redelivered copy finds the attempt succeeded, publishes its outcome again and releases the fence,
    # so that a cancel meets a paid payment and not a lapsed lease.
    command = await settled_with_its_release_lost(executor, monkeypatch)
    payment_id = command.payload.payment.payment_id
    assert executor.attempts.records and not executor.fences.fences[payment_id].paid

    await executor.send(QUEUE, command)

    assert len(executor.connector.charges) == 1
    assert (executor.fences.fences[payment_id].holder, executor.fences.fences[payment_id].paid) == (None, True)
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.PAID


async def test_a_copy_whose_republish_fails_still_makes_the_lost_fence_release(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repair comes before the publish: a broker that refuses the republished outcome does not skip it."""
    command = await settled_with_its_release_lost(executor, monkeypatch)
    payment_id = command.payload.payment.payment_id

    async def refused(message: Any) -> None:
        raise ConnectionError("NO_ROUTE")

    monkeypatch.setattr(executor.publisher, "publish", refused)
    await executor.send(QUEUE, command)  # handed back (the publish failed), the release made first

    assert (executor.fences.fences[payment_id].holder, executor.fences.fences[payment_id].paid) == (None, True)


async def test_a_decline_releases_the_lease_so_the_invoice_can_be_cancelled(executor: Executor) -> None:
    executor.connector.charge_answers.append(declined())
    command = planned()

    await executor.send(QUEUE, command)

    payment_id = command.payload.payment.payment_id
    assert executor.fences.fences[payment_id] == PaymentFence(payment_id, version=2)
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.GRANTED


async def test_an_unknown_outcome_keeps_the_lease_until_a_sync_settles_it(executor: Executor) -> None:
    executor.connector.charge_answers.append(timed_out())
    command = planned()
    payment_id = command.payload.payment.payment_id

    await executor.send(QUEUE, command)

    # The connector may still charge: the cancel waits for the outcome (or the lease's end).
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.CHARGING
    executor.connector.sync_answers.append(declined())
    await executor.send("executor.payment-sync", payment_sync(command))
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.GRANTED


async def test_a_re_send_after_psync_found_nothing_is_not_made_once_the_cancel_was_accepted(executor: Executor) -> None:
    executor.connector.charge_answers.append(timed_out())
    command = planned()
    payment_id = command.payload.payment.payment_id
    await executor.send(QUEUE, command)
    executor.clock.advance(timedelta(seconds=61))  # the lease ran out (the executor was gone, say)
    assert (await executor.fences.cancel(payment_id, executor.clock.now())).verdict is FenceVerdict.GRANTED
    executor.connector.sync_answers.extend([not_found(), not_found()])

    await executor.send("executor.payment-sync", payment_sync(command, sync_number=1))
    await executor.send("executor.payment-sync", payment_sync(command, sync_number=3))

    assert len(executor.connector.charges) == 1  # the first call only
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.SKIPPED
    assert attempt.skip_reason.startswith(
        "the invoice was closed (intake accepted its cancel, or its payment elsewhere)"
    )


async def test_an_attempt_that_cannot_take_the_lease_is_not_sent_and_left_to_psync(executor: Executor) -> None:
    command = planned(attempt_number=2)
    payment_id = command.payload.payment.payment_id
    now = executor.clock.now()
    # Attempt 1's lease is still held (say its executor died between settling it and ending the lease).
    await executor.fences.hold_for_charge(payment_id, f"{payment_id}:1", now, now + timedelta(seconds=30))

    await executor.send(QUEUE, command)

    assert executor.connector.charges == []
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.UNKNOWN  # no requeue loop: PSYNC looks, then sends under a lease
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert timer.payload.message["payload"]["sync_number"] == 1
    executor.clock.advance(timedelta(seconds=31))
    executor.connector.sync_answers.append(not_found())
    await executor.send("executor.payment-sync", payment_sync(command))
    assert len(executor.connector.charges) == 1
    assert executor.fences.fences[payment_id].paid


async def test_a_lease_granted_too_late_to_send_within_it_is_not_used(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The executor was paused between asking for the lease and getting it: half the lease (30 s) has gone by.
    readings = iter([1000.0])
    monkeypatch.setattr("recovery_executor.charging.monotonic", lambda: next(readings, 1031.0))

    await executor.send(QUEUE, planned())

    assert executor.connector.charges == []
    [attempt] = executor.attempts.records.values()
    assert attempt.status is AttemptStatus.UNKNOWN


@pytest.mark.parametrize(("lease", "timeout", "valid"), [(60, 30, True), (59, 30, False), (10, 3, True)])
def test_the_lease_holds_a_whole_connector_call_in_its_first_half(lease: float, timeout: float, valid: bool) -> None:
    if valid:
        ExecutorSettings(charge_lease_seconds=lease, connector_timeout_seconds=timeout)
    else:
        with pytest.raises(ValidationError, match="at least twice CONNECTOR_TIMEOUT_SECONDS"):
            ExecutorSettings(charge_lease_seconds=lease, connector_timeout_seconds=timeout)


def test_a_lease_a_waiting_cancel_message_could_not_outlast_is_refused() -> None:
    # A cancel message waits out a lease in redeliveries: 155 s over the queues' 20 deliveries.
    ExecutorSettings(charge_lease_seconds=120, connector_timeout_seconds=30)
    with pytest.raises(ValidationError, match="charge_lease_seconds"):
        ExecutorSettings(charge_lease_seconds=121, connector_timeout_seconds=30)
