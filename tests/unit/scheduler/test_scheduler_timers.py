"""timer.schedule and the timer loop: stored timers fire when due, as a published message or a re-plan."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import read_message
from recovery_runtime.bus import OutgoingMessage
from recovery_scheduler.domain.plans import AttemptPlan, MonitoringPlan
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0, monitoring_payment, payment, webhook_timer
from .fakes import Scheduler

QUEUE = "scheduler.timer-schedule"


async def test_a_requested_timer_is_stored_once_and_its_message_published_when_due(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    request = webhook_timer(T0 + timedelta(seconds=30))

    await scheduler.send(QUEUE, request)
    await scheduler.send(QUEUE, request)  # redelivered
    await scheduler.send(QUEUE, webhook_timer(T0 + timedelta(seconds=30)))  # asked again: the same timer id
    assert [t.status.value for t in scheduler.timers.stored.values()] == ["pending"]
    assert await scheduler.loop.fire_due() == 0  # not due yet

    scheduler.clock.advance(timedelta(seconds=30))
    assert await scheduler.loop.fire_due() == 1

    [delivered] = scheduler.published(MessageType.DELIVER_WEBHOOK)
    assert delivered.message_id == request.payload.message["message_id"]
    assert scheduler.timers.stored["webhook:evt_1:1"].status.value == "fired"
    assert len(scheduler.timers.completed) == 1  # the claim is done once its message is confirmed
    assert requeues == []


async def test_a_timers_message_is_published_as_sent_with_the_fields_this_release_does_not_know(
    scheduler: Scheduler,
) -> None:
    """A newer requester's message (a field added at the top and one inside the payload) is read tolerantly and
    published as it was sent, so the consumer of a newer release still gets both fields (docs/deployment.md)."""
    request = webhook_timer(T0, added_later={"kept": True})
    payload = {**request.payload.message["payload"], "added_later_too": 3}
    request.payload.message["payload"] = payload

    await scheduler.send(QUEUE, request)
    assert await scheduler.loop.fire_due() == 1

    [published] = scheduler.publisher.published
    body = json.loads(published.body)
    assert body == request.payload.message
    assert (body["added_later"], body["payload"]["added_later_too"]) == ({"kept": True}, 3)
    # And still what this release reads: a valid envelope of its type.
    assert read_message(MessageType.DELIVER_WEBHOOK, body).message_id == request.payload.message["message_id"]


async def test_a_timer_whose_message_is_not_an_envelope_is_dead_lettered_with_the_reason(scheduler: Scheduler) -> None:
    await scheduler.send(QUEUE, webhook_timer(T0, type="webhook.unknown"))
    await scheduler.send(QUEUE, webhook_timer(T0, payload={"retry_index": -1}))

    unknown, invalid = scheduler.publisher.dead_letters
    assert unknown.reason == (
        "timer webhook:evt_1:1: message is not a valid envelope: unknown message type 'webhook.unknown'"
    )
    assert invalid.reason.startswith("timer webhook:evt_1:1: message is not a valid envelope: ")
    assert scheduler.timers.stored == {}


async def test_the_first_retry_timer_fires_the_executor_command_it_holds(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, AttemptPlan)

    scheduler.clock.current = plan.due_at
    assert await scheduler.loop.fire_due() == 1

    [command] = scheduler.published(MessageType.EXECUTE_RETRY)
    assert (command.payload.attempt_id, command.payload.attempt_number) == (plan.attempt_id, 1)


async def test_a_replan_timer_asks_the_planner_again_and_its_next_timer_is_reported_to_the_loop(
    scheduler: Scheduler,
) -> None:
    recovery = monitoring_payment(monitoring_seconds=3600)
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    monitoring = scheduler.recovery(recovery.payment_id)
    assert monitoring.status is RecoveryStatus.MONITORING
    plan = monitoring.plan
    assert isinstance(plan, MonitoringPlan) and plan.timer_id == f"replan:{recovery.payment_id}:1"
    assert plan.due_at is not None

    scheduler.clock.current = plan.due_at  # the monitoring period is over
    assert await scheduler.loop.fire_due() == 1

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.algorithm.value, stored.status, stored.version) == ("cascading", RecoveryStatus.SCHEDULED, 2)
    assert isinstance(stored.plan, AttemptPlan)
    assert scheduler.stored_timers_reported == [stored.plan.due_at]
    assert scheduler.timers.status_of(recovery.payment_id) == {
        f"replan:{recovery.payment_id}:1": "fired",
        f"execute:{recovery.payment_id}:1": "pending",
    }


async def test_a_replan_that_fails_is_backed_off_and_the_rest_of_its_batch_fires(scheduler: Scheduler) -> None:
    recovery = monitoring_payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send(QUEUE, webhook_timer(T0))
    replan_id = f"replan:{recovery.payment_id}:1"
    scheduler.recoveries.race_next = lambda: scheduler.recoveries.written_elsewhere(recovery.payment_id)

    scheduler.clock.current = scheduler.timers.stored[replan_id].timer.due_at
    assert await scheduler.loop.fire_due() == 1  # the webhook; the re-plan lost its compare-and-set

    assert scheduler.timers.stored[replan_id].status.value == "leased"  # pending again after a lease
    assert len(scheduler.published(MessageType.DELIVER_WEBHOOK)) == 1


async def test_a_batch_whose_publish_fails_is_given_back(scheduler: Scheduler) -> None:
    await scheduler.send(QUEUE, webhook_timer(T0))

    async def refused(message: OutgoingMessage) -> None:
        raise ConnectionError("the broker went away")

    scheduler.publisher.publish = refused  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):  # the loop logs it and claims again
        await scheduler.loop.fire_due()

    assert scheduler.timers.completed == []
    assert scheduler.timers.stored["webhook:evt_1:1"].status.value == "pending"


async def test_a_message_the_broker_refuses_backs_off_its_timer_alone_and_the_rest_fire(scheduler: Scheduler) -> None:
    """No queue bound for one message (a deploy step not run yet): its timer is backed off a lease, and the others
    of the batch fire once, rather than the whole batch being published again at every poll."""
    await scheduler.send(QUEUE, webhook_timer(T0))
    second = {"payload": {"initial_attempt_id": "evt_2", "retry_index": 1}}
    await scheduler.send(QUEUE, webhook_timer(T0, "webhook:evt_2:1", **second))
    publish = scheduler.publisher.publish

    async def unroutable_evt_2(message: OutgoingMessage) -> None:
        if b"evt_2" in message.body:
            raise ConnectionError("NO_ROUTE")
        await publish(message)

    scheduler.publisher.publish = unroutable_evt_2  # type: ignore[method-assign]
    assert await scheduler.loop.fire_due() == 1

    assert scheduler.timers.stored["webhook:evt_1:1"].status.value == "fired"
    assert scheduler.timers.stored["webhook:evt_2:1"].status.value == "leased"  # pending again after a lease
    assert len(scheduler.published(MessageType.DELIVER_WEBHOOK)) == 1
