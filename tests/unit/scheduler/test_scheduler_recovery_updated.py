"""recovery.updated: intake's news about the invoice (cancelled, paid elsewhere, in progress, failed again)."""

from __future__ import annotations

from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import CARD_DATA_BACKFILL
from recovery_scheduler.domain.plans import AttemptPlan, AwaitBillingPlan
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import attempt_failed, payment, recovery_updated
from .fakes import Scheduler

QUEUE = "scheduler.recovery-updated"


async def test_a_cancelled_invoice_stops_the_pending_retries(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=2))

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status) == (RecoveryStatus.CANCELLED, "CANCELLED_BY_BILLING_CONNECTOR")
    assert (stored.intake_version, stored.plan) == (2, None)
    assert scheduler.timers.status_of(recovery.payment_id) == {f"execute:{recovery.payment_id}:1": "cancelled"}


async def test_a_cancel_the_merchant_asked_for_says_so(scheduler: Scheduler) -> None:
    recovery, early = payment(), payment(payment_id="12345_pay_" + "e" * 32)
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=2, by_merchant=True))
    # Before the recovery itself (events on different queues): the tombstone says so too.
    await scheduler.send(QUEUE, recovery_updated(early, "cancel_invoice", version=1, by_merchant=True))

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status) == (RecoveryStatus.CANCELLED, "CANCELLED_BY_MERCHANT")
    assert stored.history[-1].reason == "the merchant cancelled the recovery: pending retries stopped"
    assert scheduler.timers.status_of(recovery.payment_id) == {f"execute:{recovery.payment_id}:1": "cancelled"}
    tombstone = scheduler.recovery(early.payment_id)
    assert (tombstone.status, tombstone.business_status) == (RecoveryStatus.CANCELLED, "CANCELLED_BY_MERCHANT")
    assert "cancel_invoice by the merchant" in tombstone.history[-1].reason


async def test_a_cancel_tells_the_merchant_once_with_the_last_attempt_and_a_payment_paid_elsewhere_does_not(
    scheduler: Scheduler,
) -> None:
    recovery, paid, early = (
        payment(),
        payment(payment_id="12345_pay_" + "p" * 32),
        payment(payment_id="12345_pay_" + "e" * 32),
    )
    for one in (recovery, paid):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(one))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "insufficient_funds"))

    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=2, by_merchant=True))
    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=3))  # after the end: recorded
    await scheduler.send(QUEUE, recovery_updated(paid, "success_payment_external", version=2))
    await scheduler.send(QUEUE, recovery_updated(early, "cancel_invoice", version=1))  # before its recovery

    first, second = scheduler.published(MessageType.PAYMENT_CANCELLED)
    assert (first.correlation_id, first.merchant_id, first.profile_id) == (
        recovery.payment_id, recovery.merchant_id, recovery.profile_id,
    )  # fmt: skip
    cancelled = first.payload
    assert (cancelled.business_status, cancelled.reason) == (
        "CANCELLED_BY_MERCHANT", "the merchant cancelled the recovery: pending retries stopped",
    )  # fmt: skip
    shown = cancelled.payment
    assert (shown.id, shown.status.value) == (recovery.payment_id, "cancelled")
    assert shown.error is not None and shown.error.code == "insufficient_funds"
    assert shown.feature_metadata.revenue_recovery.total_retry_count == recovery.billing_retry_count + 1
    # The tombstone of a cancel seen before its recovery: no attempt of this system to show.
    assert (second.correlation_id, second.payload.business_status) == (
        early.payment_id,
        "CANCELLED_BY_BILLING_CONNECTOR",
    )
    assert second.payload.payment.error is None and second.payload.payment.connector_transaction_id is None


async def test_an_update_delivered_twice_or_older_than_the_last_changes_nothing(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    pause = recovery_updated(recovery, "pending_payment", version=3)

    await scheduler.send(QUEUE, pause)
    await scheduler.send(QUEUE, pause)
    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=2))  # overtaken

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.paused, stored.version) == (RecoveryStatus.AWAITING_BILLING, True, 2)
    assert [n.what for n in stored.history] == ["attempt_planned", "paused"]
    assert requeues == [] and scheduler.publisher.dead_letters == []


async def test_a_stop_seen_before_the_recovery_leaves_a_tombstone_a_late_start_cannot_undo(
    scheduler: Scheduler,
) -> None:
    recovery = payment()

    await scheduler.send(QUEUE, recovery_updated(recovery, "cancel_invoice", version=2))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.version) == (RecoveryStatus.CANCELLED, 0)
    assert scheduler.timers.stored == {}


async def test_a_paused_recovery_resumes_on_the_next_failure_with_a_timer_of_its_own(scheduler: Scheduler) -> None:
    """The paused attempt's command may have fired and been refused by the executor: planned again, the same
    attempt number gets a timer id of its own."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send(QUEUE, recovery_updated(recovery, "pending_payment", version=2))
    assert isinstance(scheduler.recovery(recovery.payment_id).plan, AwaitBillingPlan)

    await scheduler.send(QUEUE, recovery_updated(recovery, "schedule_failed_payment", version=3))

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.paused) == (RecoveryStatus.SCHEDULED, False)
    plan = stored.plan
    assert isinstance(plan, AttemptPlan) and plan.attempt_number == 1
    assert plan.timer_id == f"execute:{recovery.payment_id}:1:r3"
    assert scheduler.timers.status_of(recovery.payment_id) == {
        f"execute:{recovery.payment_id}:1": "cancelled",
        f"replan:{recovery.payment_id}:2": "cancelled",  # the pause's re-plan at the horizon
        plan.timer_id: "pending",
    }


async def test_a_new_token_reopens_a_recovery_that_failed_for_want_of_one(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "lost_card"))
    assert scheduler.recovery(recovery.payment_id).status is RecoveryStatus.FAILED
    with_new_card = payment(payment_id=recovery.payment_id, tokens=("pm_card_visa", "pm_card_mastercard"))

    await scheduler.send(
        QUEUE,
        recovery_updated(with_new_card, "schedule_failed_payment", version=2, tokens_added=("pm_card_mastercard",)),
    )

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status, stored.ended_at) == (RecoveryStatus.SCHEDULED, None, None)
    assert isinstance(stored.plan, AttemptPlan) and stored.plan.token == "pm_card_mastercard"
    assert [n.what for n in stored.history][-3:] == ["tokens_added", "reopened", "attempt_planned"]


async def test_an_update_without_its_version_is_dead_lettered_with_the_reason(scheduler: Scheduler) -> None:
    await scheduler.send(QUEUE, b'{"type": "recovery.updated", "payload": {"action": "cancel_invoice"}}')

    [dead] = scheduler.publisher.dead_letters
    assert "payload.version: Field required" in dead.reason


async def test_a_card_data_backfill_takes_the_new_card_and_leaves_the_plan_alone(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    planned = scheduler.recovery(recovery.payment_id).plan
    card = recovery.tokens[0]
    renewed = recovery.model_copy(
        update={"tokens": (card.model_copy(update={"card_exp_month": "04", "card_exp_year": "2031"}),)}
    )

    await scheduler.send(QUEUE, recovery_updated(renewed, CARD_DATA_BACKFILL, version=1))

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.payment.tokens[0].card_exp_year == "2031"
    # A changed card lifts an earlier `fix` block (the planner reads when); the planned attempt stands.
    assert stored.card_updated_at == {card.token: scheduler.clock.now()}
    assert stored.plan == planned and stored.status is RecoveryStatus.SCHEDULED
    assert stored.history[-1].reason == f"{CARD_DATA_BACKFILL}: recorded"


async def test_a_recovery_that_ended_for_an_expired_card_plans_again_once_the_card_is_updated(
    scheduler: Scheduler,
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "expired_card"))
    ended = scheduler.recovery(recovery.payment_id)
    assert (ended.status, ended.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED")
    card = recovery.tokens[0]
    same = recovery.model_copy(update={"tokens": (card.model_copy(update={"card_issuer": card.card_issuer}),)})
    renewed = recovery.model_copy(
        update={"tokens": (card.model_copy(update={"card_exp_month": "04", "card_exp_year": "2031"}),)}
    )

    scheduler.clock.advance(timedelta(days=2))  # the account updater's answer comes after the decline
    await scheduler.send(QUEUE, recovery_updated(same, CARD_DATA_BACKFILL, version=1))  # nothing changed
    assert scheduler.recovery(recovery.payment_id).status is RecoveryStatus.FAILED
    await scheduler.send(QUEUE, recovery_updated(renewed, CARD_DATA_BACKFILL, version=2))

    reopened = scheduler.recovery(recovery.payment_id)
    assert reopened.status is RecoveryStatus.SCHEDULED and reopened.business_status is None
    assert isinstance(reopened.plan, AttemptPlan) and reopened.plan.attempt_number == 2
    assert [n.what for n in reopened.history][-2:] == ["reopened", "attempt_planned"]
    assert scheduler.timers.status_of(recovery.payment_id)[f"execute:{recovery.payment_id}:2"] == "pending"


async def test_a_card_update_does_not_reopen_a_recovery_the_customer_must_authenticate(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "authentication_required"))
    scheduler.clock.advance(timedelta(days=2))
    card = recovery.tokens[0]
    renewed = recovery.model_copy(
        update={"tokens": (card.model_copy(update={"card_exp_month": "04", "card_exp_year": "2031"}),)}
    )

    await scheduler.send(QUEUE, recovery_updated(renewed, CARD_DATA_BACKFILL, version=1))

    stored = scheduler.recovery(recovery.payment_id)
    assert (stored.status, stored.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED")
    assert stored.history[-1].reason == f"{CARD_DATA_BACKFILL} after the recovery ended (failed): recorded"
    assert len(scheduler.published(MessageType.PAYMENT_FAILED)) == 1  # told once, not again


async def test_a_card_data_backfill_that_overtakes_its_recovery_waits_for_it_and_then_applies(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    """Intake sends the backfill only for an intent whose `recovery.scheduled` it sent before, but the two travel
    on different queues: seen first, the backfill is handed back (not recorded as applied), and applies once the
    recovery has started from the older snapshot."""
    recovery = payment()
    card = recovery.tokens[0]
    renewed = recovery.model_copy(
        update={"tokens": (card.model_copy(update={"card_exp_month": "04", "card_exp_year": "2031"}),)}
    )
    backfill = recovery_updated(renewed, CARD_DATA_BACKFILL, version=1)

    await scheduler.send(QUEUE, backfill)
    assert requeues == [0] and scheduler.recoveries.records == {}
    assert scheduler.publisher.dead_letters == []

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send(QUEUE, backfill)  # its redelivery

    stored = scheduler.recovery(recovery.payment_id)
    assert stored.payment.tokens[0].card_exp_year == "2031" and stored.intake_version == 1
    assert stored.history[-1].reason == f"{CARD_DATA_BACKFILL}: recorded"
