"""payment.attempt-failed and payment.succeeded: the next retry or the end, once per outcome."""

from __future__ import annotations

from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import PAYMENT_METHOD_UNUSABLE, AttemptOutcome
from recovery_scheduler.domain.plans import AttemptPlan
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import attempt_failed, payment, payment_succeeded, recovery_updated
from .fakes import Scheduler

FAILED = "scheduler.attempt-failed"
SUCCEEDED = "scheduler.payment-succeeded"


async def test_a_soft_decline_plans_the_next_retry_on_its_own_timer(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    await scheduler.send(FAILED, attempt_failed(recovery, 1, "insufficient_funds"))

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.status is RecoveryStatus.SCHEDULED and stored.version == 2
    assert [(a.number, a.codes.decline_code) for a in stored.attempts] == [(1, "insufficient_funds")]
    assert isinstance(stored.plan, AttemptPlan) and stored.plan.attempt_number == 2
    assert scheduler.timers.status_of(recovery.payment_id) == {
        f"execute:{recovery.payment_id}:1": "pending",
        f"execute:{recovery.payment_id}:2": "pending",
    }
    failed = stored.history[1]
    assert (failed.what, failed.details["decline_class"]) == ("attempt_failed", "later")
    assert scheduler.published(MessageType.PAYMENT_FAILED) == []


async def test_a_hard_decline_on_the_only_token_ends_the_recovery_with_payment_failed(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    failure = attempt_failed(recovery, 1, "lost_card")

    await scheduler.send(FAILED, failure)

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_HARD_DECLINE_ERROR")
    assert stored.hard_declined_tokens == ("pm_card_visa",) and stored.plan is None
    [ended] = scheduler.published(MessageType.PAYMENT_FAILED)
    assert ended.causation_id == failure.message_id and ended.correlation_id == recovery.payment_id
    assert ended.payload.attempt_id == failure.payload.attempt_id
    assert (ended.payload.payment.status, ended.payload.payment.error.code) == ("failed", "lost_card")
    assert "pending" not in scheduler.timers.status_of(recovery.payment_id).values()


async def test_a_saved_method_the_connector_refuses_waits_for_new_card_data_where_a_connector_error_retries(
    scheduler: Scheduler,
) -> None:
    """A connector's refusal of the saved method itself (detached from the customer: the executor's
    `payment_method_unusable`) is a `fix`: the next retry moves to the customer's other card at once, and a
    recovery with no other card ends waiting for the customer. Any other connector error is technical trouble,
    retried on the same card."""
    two_cards, one_card, other_error = payment(tokens=("pm_card_visa", "pm_card_mastercard")), payment(), payment()
    for each in (two_cards, one_card, other_error):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))

    for each in (two_cards, one_card):
        refused = attempt_failed(each, 1, None, outcome=AttemptOutcome.ERROR, error_code=PAYMENT_METHOD_UNUSABLE)
        await scheduler.send(FAILED, refused)
    await scheduler.send(FAILED, attempt_failed(other_error, 1, None, outcome=AttemptOutcome.ERROR, error_code="x"))

    moved = scheduler.recovery(two_cards.payment_id)
    assert isinstance(moved.plan, AttemptPlan) and moved.plan.token == "pm_card_mastercard"
    assert moved.history[1].details["decline_class"] == "fix"
    ended = scheduler.recovery(one_card.payment_id)
    assert (ended.status, ended.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED")
    assert "payment_method_unusable" in ended.history[-1].reason
    retried = scheduler.recovery(other_error.payment_id)
    assert isinstance(retried.plan, AttemptPlan) and retried.plan.token == "pm_card_visa"
    assert retried.history[1].details["decline_class"] == "technical"


async def test_a_card_stripe_refuses_for_its_declines_today_is_retried_a_day_later_by_the_ladder(
    scheduler: Scheduler,
) -> None:
    """Cascading's next ladder step is 3 h away; Stripe refuses the card for 24 h (`card_decline_rate_limit_exceeded`),
    so the retry is planned past that, not into it."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    refused = attempt_failed(recovery, 1, None, error_code="card_decline_rate_limit_exceeded")

    await scheduler.send(FAILED, refused)

    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, AttemptPlan) and plan.token == "pm_card_visa"
    assert plan.planned_at >= refused.payload.attempted_at + timedelta(days=1), plan
    assert "advised wait after the last decline (error_code=card_decline_rate_limit_exceeded" in plan.reason


async def test_a_failure_delivered_twice_or_reported_twice_is_recorded_once(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    failure = attempt_failed(recovery, 1)

    await scheduler.send(FAILED, failure)
    await scheduler.send(FAILED, failure)  # redelivered: the inbox has it
    await scheduler.send(FAILED, attempt_failed(recovery, 1))  # the same attempt under another message id

    stored = scheduler.recovery(recovery.payment_id)
    assert len(stored.attempts) == 1 and stored.version == 2
    assert len(scheduler.timers.stored) == 2
    assert requeues == [] and scheduler.publisher.dead_letters == []


async def test_a_failure_that_loses_the_compare_and_set_is_applied_on_its_redelivery(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    failure = attempt_failed(recovery, 1)
    scheduler.recoveries.race_next = lambda: scheduler.recoveries.written_elsewhere(recovery.payment_id)

    await scheduler.send(FAILED, failure)

    assert requeues == [0]  # handed back for a redelivery, after a pause
    assert scheduler.recovery(recovery.payment_id).attempts == ()
    assert len(scheduler.timers.stored) == 1  # the write stopped at the recovery: no timer of the lost plan
    assert scheduler.retry_stats.counted == []  # nor a count in the retry statistics

    await scheduler.send(FAILED, failure)  # the redelivery, on the newer state

    stored = scheduler.recovery(recovery.payment_id)
    assert len(stored.attempts) == 1 and stored.version == 3
    assert [o.attempt_id for o in scheduler.retry_stats.counted] == [failure.payload.attempt_id]
    assert isinstance(stored.plan, AttemptPlan) and stored.plan.timer_id in scheduler.timers.stored


async def test_a_failure_for_an_unknown_recovery_or_without_its_fields_is_dead_lettered(
    scheduler: Scheduler,
) -> None:
    await scheduler.send(FAILED, attempt_failed(payment()))
    await scheduler.send(FAILED, b'{"type": "payment.attempt-failed", "payload": {"payment_id": "pay_1"}}')

    unknown, invalid = scheduler.publisher.dead_letters
    assert unknown.reason.startswith("no recovery ") and unknown.reason.endswith(" for attempt 1")
    assert "payload.attempt_id: Field required" in invalid.reason


async def test_a_success_ends_the_recovery_and_cancels_the_retry_planned_after_another_attempt(
    scheduler: Scheduler,
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send(FAILED, attempt_failed(recovery, 1))
    success = payment_succeeded(recovery, attempt_number=1)  # attempt 1 succeeded after all (settled by PSYNC)

    await scheduler.send(SUCCEEDED, success)

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status, stored.plan) == (
        RecoveryStatus.SUCCEEDED,
        "COMPLETED_EXECUTE_TASK",
        None,
    )
    assert stored.applied_messages[-1] == f"{SUCCEEDED}:{success.message_id}"
    assert scheduler.timers.status_of(recovery.payment_id)[f"execute:{recovery.payment_id}:2"] == "cancelled"
    assert stored.history[-1].what == "ended"


async def test_the_success_of_the_planned_attempt_is_one_write_and_cancels_nothing(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    unit_of_work = scheduler.unit_of_work
    transactions, writes = unit_of_work.transactions, unit_of_work.single_writes

    await scheduler.send(SUCCEEDED, payment_succeeded(recovery, attempt_number=1))

    # The hot path: no transaction (the count in the retry statistics follows as a write of its own).
    assert (unit_of_work.transactions - transactions, unit_of_work.single_writes - writes) == (0, 1)

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.status is RecoveryStatus.SUCCEEDED and stored.version == 2
    [(number, outcome)] = [(a.number, a.outcome.value) for a in stored.attempts]
    assert (number, outcome) == (1, "succeeded")
    assert [o.attempt_id for o in scheduler.retry_stats.counted] == [stored.attempts[0].attempt_id]
    # Its timer has fired (in production): a plan has one timer, so there is nothing to cancel.
    assert scheduler.timers.status_of(recovery.payment_id) == {f"execute:{recovery.payment_id}:1": "pending"}


async def test_a_success_delivered_twice_ends_the_recovery_once(scheduler: Scheduler, requeues: list[int]) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    success = payment_succeeded(recovery)

    await scheduler.send(SUCCEEDED, success)
    await scheduler.send(SUCCEEDED, success)

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.version == 2 and [n.what for n in stored.history].count("ended") == 1
    assert requeues == [] and scheduler.publisher.dead_letters == []


async def test_a_success_that_loses_the_compare_and_set_is_applied_on_its_redelivery(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    success = payment_succeeded(recovery)
    scheduler.recoveries.race_next = lambda: scheduler.recoveries.written_elsewhere(recovery.payment_id)

    await scheduler.send(SUCCEEDED, success)
    assert requeues == [0] and scheduler.recovery(recovery.payment_id).status is RecoveryStatus.SCHEDULED

    await scheduler.send(SUCCEEDED, success)

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.status is RecoveryStatus.SUCCEEDED and stored.version == 3


async def test_a_success_after_the_invoice_was_cancelled_is_recorded_with_the_conflict(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "cancel_invoice", version=2))
    await scheduler.send(SUCCEEDED, payment_succeeded(recovery))

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.status is RecoveryStatus.SUCCEEDED
    conflict = next(n for n in stored.history if n.what == "conflict")
    assert "(CANCELLED_BY_BILLING_CONNECTOR)" in conflict.reason and "paid twice" in conflict.reason


async def test_a_success_for_an_unknown_recovery_is_dead_lettered(scheduler: Scheduler) -> None:
    recovery = payment()

    await scheduler.send(SUCCEEDED, payment_succeeded(recovery))

    [dead] = scheduler.publisher.dead_letters
    assert dead.reason == f"no recovery {recovery.payment_id}"
