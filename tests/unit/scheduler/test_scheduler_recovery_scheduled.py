"""recovery.scheduled: a recovery starts once, with its first retry on a durable timer."""

from __future__ import annotations

from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_scheduler.domain.plans import AttemptPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus
from recovery_scheduler.domain.timers import TimerKind
from support.payments import scheduled

from .builders import T0, payment
from .fakes import Scheduler

QUEUE = "scheduler.recovery-scheduled"


async def test_a_new_recovery_stores_its_first_retry_on_a_timer(scheduler: Scheduler) -> None:
    recovery = payment()
    message = scheduled(recovery)

    await scheduler.send(QUEUE, message)

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.version) == (RecoveryStatus.SCHEDULED, 1)
    assert stored.applied_messages == (f"{QUEUE}:{message.message_id}",)
    plan = stored.plan
    assert isinstance(plan, AttemptPlan) and plan.attempt_number == 1
    assert plan.timer_id == f"execute:{recovery.payment_id}:1"
    [timer] = [t.timer for t in scheduler.timers.stored.values()]
    assert (timer.timer_id, timer.kind, timer.purpose) == (plan.timer_id, TimerKind.MESSAGE, "execute_retry")
    # The ladder's first step (+60 s) and Hyperswitch's jitter (1-300 s); at TIME_SCALE 1 due when planned.
    assert T0 + timedelta(seconds=61) <= plan.planned_at <= T0 + timedelta(seconds=360)
    assert timer.due_at == plan.due_at == plan.planned_at
    # The command inside the timer: attempt 1, counting the billing system's own attempt, caused by the message.
    assert timer.message is not None and timer.message.type is MessageType.EXECUTE_RETRY
    command = timer.message.payload
    assert (command.attempt_number, command.total_retry_count, command.attempt_id) == (1, 2, plan.attempt_id)
    assert timer.message.causation_id == message.message_id
    assert [n.what for n in stored.history] == ["attempt_planned"]
    assert scheduler.publisher.published == []  # nothing is sent before the timer fires


async def test_a_redelivery_and_a_second_copy_of_the_event_start_nothing_more(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    message = scheduled(recovery)
    again = scheduled(recovery)  # the same event published twice: another message id

    await scheduler.send(QUEUE, message)
    await scheduler.send(QUEUE, message)
    await scheduler.send(QUEUE, again)
    await scheduler.send(QUEUE, again)

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.version == 1 and len(stored.history) == 1
    assert stored.applied_messages == (f"{QUEUE}:{message.message_id}", f"{QUEUE}:{again.message_id}")
    assert list(scheduler.timers.stored) == [f"execute:{recovery.payment_id}:1"]
    assert requeues == [] and scheduler.publisher.dead_letters == []


async def test_a_recovery_another_scheduler_inserted_first_is_left_to_it(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    theirs = Recovery.new(recovery, T0)
    scheduler.recoveries.race_next = lambda: scheduler.recoveries.records.setdefault(recovery.payment_id, theirs)
    message = scheduled(recovery)

    await scheduler.send(QUEUE, message)

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.history == () and stored.applied_messages == (f"{QUEUE}:{message.message_id}",)
    assert scheduler.timers.stored == {}  # the insert lost, and the timer with it
    assert requeues == []


async def test_a_message_without_its_payload_is_dead_lettered_with_the_reason(scheduler: Scheduler) -> None:
    await scheduler.send(QUEUE, b'{"type": "recovery.scheduled"}')

    [dead] = scheduler.publisher.dead_letters
    assert dead.queue == QUEUE and "payload: Field required" in dead.reason
    assert scheduler.recoveries.records == {}
