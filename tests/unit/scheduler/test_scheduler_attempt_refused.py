"""payment.attempt-refused: an attempt the executor refused without sending it. The recovery asks the planner again
a little later (the refused attempt's slot given back), unless it ended or was planned otherwise since; before, it
waited for ever for an outcome that would never come."""

from __future__ import annotations

from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_scheduler.domain.plans import AttemptPlan, ReplanPlan
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import attempt_refused, payment, recovery_updated
from .fakes import Scheduler

REFUSED = "scheduler.attempt-refused"


def slots(scheduler: Scheduler, token: str) -> list[int]:
    """The attempt numbers of the card's reservations (0: the billing system's own tries)."""
    return [r.attempt_number for r in scheduler.card_budgets.of("merchant_test", token).reservations]


IN_PROGRESS = "the billing system reports a payment in progress"


async def test_a_refused_attempt_is_planned_again_after_a_wait_that_doubles_with_each_refusal(
    scheduler: Scheduler,
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    first = scheduler.planned(recovery)
    scheduler.clock.current = first.due_at
    assert await scheduler.loop.fire_due() == 1  # the EXECUTE went out; the executor refuses it
    assert slots(scheduler, first.token) == [0, 1]  # the billing system's try, attempt 1

    await scheduler.send(REFUSED, attempt_refused(recovery, 1, first.attempt_id, IN_PROGRESS))

    waiting = scheduler.recovery(recovery.payment_id)
    assert waiting.status is RecoveryStatus.SCHEDULED and waiting.attempts == ()  # nothing was charged
    assert isinstance(waiting.plan, ReplanPlan)
    assert waiting.plan.due_at == first.due_at + timedelta(minutes=10)
    assert waiting.history[-2].what == "attempt_refused" and IN_PROGRESS in waiting.history[-2].reason
    assert slots(scheduler, first.token) == [0]  # its slot given back

    scheduler.clock.current = waiting.plan.due_at
    assert await scheduler.loop.fire_due() == 1  # the re-plan: the same attempt number, a new attempt id
    again = scheduler.planned(recovery)
    assert again.attempt_number == 1 and again.attempt_id != first.attempt_id and again.timer_id != first.timer_id
    assert slots(scheduler, first.token) == [0, 1]  # the billing system's try, attempt 1
    scheduler.clock.current = again.due_at
    assert await scheduler.loop.fire_due() == 1
    commands = scheduler.published(MessageType.EXECUTE_RETRY)
    assert [c.payload.attempt_id for c in commands] == [first.attempt_id, again.attempt_id]

    await scheduler.send(REFUSED, attempt_refused(recovery, 1, again.attempt_id, IN_PROGRESS))
    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, ReplanPlan) and plan.due_at == again.due_at + timedelta(minutes=20)


async def test_a_refusal_of_an_attempt_no_longer_planned_is_only_recorded(scheduler: Scheduler) -> None:
    stopped, replanned = payment(), payment()
    for each in (stopped, replanned):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    stale = {each.payment_id: scheduler.planned(each).attempt_id for each in (stopped, replanned)}
    await scheduler.send("scheduler.recovery-updated", recovery_updated(stopped, "cancel_invoice", 2))
    await scheduler.send(REFUSED, attempt_refused(replanned, 1, stale[replanned.payment_id]))
    replanned_plan = scheduler.recovery(replanned.payment_id).plan
    timers_before = {p: scheduler.timers.status_of(p) for p in stale}

    for each in (stopped, replanned):  # the executor refuses the first attempt again, late
        await scheduler.send(REFUSED, attempt_refused(each, 1, stale[each.payment_id], "the invoice was cancelled"))

    ended = scheduler.recovery(stopped.payment_id)
    assert ended.status is RecoveryStatus.CANCELLED and ended.plan is None
    assert ended.history[-1].what == "attempt_refused" and ended.history[-1].reason.endswith("; recorded")
    assert scheduler.recovery(replanned.payment_id).plan == replanned_plan  # the re-plan stands
    assert {p: scheduler.timers.status_of(p) for p in stale} == timers_before


async def test_a_copy_of_the_refusal_is_applied_once(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    planned = scheduler.planned(recovery)
    refusal = attempt_refused(recovery, 1, planned.attempt_id)

    await scheduler.send(REFUSED, refusal)
    after_first = scheduler.recovery(recovery.payment_id)
    await scheduler.send(REFUSED, refusal)

    assert scheduler.recovery(recovery.payment_id) == after_first
    assert isinstance(after_first.plan, ReplanPlan) and not isinstance(after_first.plan, AttemptPlan)
