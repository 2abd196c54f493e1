"""Card budgets through the handlers on in-memory repositories: a planned attempt reserves its slot on the
merchant's card by compare-and-set, a lost compare-and-set plans again on the newer budget, other merchants'
reservations do not count, and a stopped recovery gives its slot back.

The payments' billing-system failure lies 40 days back, outside every window: only this system's attempts count.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_contracts.recovery import PaymentToken, RecoveryPayment
from recovery_scheduler.domain.card_budgets import CardBudget, Reservation
from recovery_scheduler.domain.plans import AttemptPlan, ReplanPlan
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0, attempt_failed, attempt_refused, payment_succeeded, recovery_updated
from .builders import payment as base_payment
from .fakes import Scheduler

VISA = "pm_card_visa"
VISA_30_DAYS = "20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr 2026)"


def payment(merchant_id: str = "merchant_test", **overrides: object) -> RecoveryPayment:
    return base_payment(merchant_id=merchant_id, transaction_created_at=T0 - timedelta(days=40), **overrides)


def reserved(count: int, merchant_id: str = "merchant_test", token: str = VISA) -> CardBudget:
    """`count` attempts of the merchant's other recoveries on the card, declined in the last hours."""
    slots = tuple(
        Reservation(f"12345_pay_other_{i}", 1, T0 - timedelta(hours=i + 1), 2250, "USD", "declined")
        for i in range(count)
    )
    return CardBudget(merchant_id, token, 0, slots)


def planned_ids(scheduler: Scheduler) -> list[str]:
    return [r.payment_id for r in scheduler.recoveries.records.values() if isinstance(r.plan, AttemptPlan)]


async def test_a_planned_attempt_reserves_its_slot_on_the_merchants_card(scheduler: Scheduler) -> None:
    recovery = payment()
    message = scheduled(recovery)
    await scheduler.send("scheduler.recovery-scheduled", message)
    await scheduler.send("scheduler.recovery-scheduled", message)  # a duplicate: one reservation

    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, AttemptPlan)
    budget = scheduler.card_budgets.of("merchant_test", VISA)
    assert budget.version == 1
    assert budget.reservations == (Reservation(recovery.payment_id, 1, plan.planned_at, 2250, "USD", "planned"),)


async def test_21_recoveries_of_one_merchant_on_one_visa_card_plan_20(scheduler: Scheduler) -> None:
    payments = [payment() for _ in range(21)]
    for each in payments:
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))

    assert planned_ids(scheduler) == [p.payment_id for p in payments[:20]]
    last = scheduler.recovery(payments[20].payment_id)
    assert last.status is RecoveryStatus.FAILED and last.attempts == ()
    assert VISA_30_DAYS in last.history[-1].reason
    assert len(scheduler.card_budgets.of("merchant_test", VISA).reservations) == 20


async def test_another_merchants_reservations_on_the_same_card_do_not_count(scheduler: Scheduler) -> None:
    scheduler.card_budgets.put(reserved(20, merchant_id="merchant_other"))
    recovery = payment()

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, AttemptPlan) and plan.planned_at <= T0 + timedelta(minutes=6)  # the ladder's first step
    assert len(scheduler.card_budgets.of("merchant_other", VISA).reservations) == 20


async def test_a_reservation_beaten_to_the_last_slot_plans_again_and_waits_for_the_budget(
    scheduler: Scheduler,
) -> None:
    """19 slots used; between this plan's read and its write another instance takes the 20th. Planned again on
    the newer budget, the recovery waits until the oldest attempt leaves Visa's 30 days."""
    scheduler.card_budgets.put(reserved(19))
    scheduler.card_budgets.race_next = lambda: scheduler.card_budgets.put(reserved(20))
    recovery = payment()

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    assert scheduler.card_budgets.lost == 1
    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, ReplanPlan) and plan.at == T0 - timedelta(hours=20) + timedelta(days=30)
    assert plan.reason.startswith(f"network budget used up ({VISA_30_DAYS})")
    assert scheduler.published(MessageType.EXECUTE_RETRY) == []
    assert [r.payment_id for r in scheduler.card_budgets.of("merchant_test", VISA).reservations] == [
        f"12345_pay_other_{i}" for i in range(20)
    ]


async def test_a_reservation_beaten_to_one_of_two_slots_takes_the_other_on_the_second_plan(
    scheduler: Scheduler,
) -> None:
    scheduler.card_budgets.put(reserved(18))
    scheduler.card_budgets.race_next = lambda: scheduler.card_budgets.put(reserved(19))
    recovery = payment()

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    assert scheduler.card_budgets.lost == 1
    assert planned_ids(scheduler) == [recovery.payment_id]
    budget = scheduler.card_budgets.of("merchant_test", VISA)
    assert (len(budget.reservations), budget.version) == (20, 3)


async def test_a_full_budget_waits_for_the_next_free_slot_with_the_limits_and_their_editions(
    scheduler: Scheduler,
) -> None:
    """A Mastercard's ten a day: the plan waits for the day's budget, within the retry window."""
    mastercard = PaymentToken(token="pm_card_mastercard", card_network="Mastercard")
    scheduler.card_budgets.put(reserved(10, token="pm_card_mastercard"))
    recovery = payment().model_copy(update={"tokens": (mastercard,)})

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, ReplanPlan) and plan.at == T0 - timedelta(hours=10) + timedelta(days=1)
    assert plan.reason == (
        "network budget used up (10 attempts per UTC day on the card (Hyperswitch helm chart defaults, as read "
        "2026); 10 declines per rolling 24 h on the card (Mastercard rules as summarised in recovery-rules.md "
        "(2026))); token pm_card_mastercard has budget again then"
    )
    assert scheduler.card_budgets.of("merchant_test", "pm_card_mastercard").version == 1  # nothing reserved


async def test_a_stopped_or_paused_recovery_gives_its_planned_attempts_slot_back(scheduler: Scheduler) -> None:
    for version, action in enumerate(("cancel_invoice", "success_payment_external", "pending_payment"), start=2):
        recovery = payment()
        await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
        assert recovery.payment_id in {
            r.payment_id for r in scheduler.card_budgets.of("merchant_test", VISA).reservations
        }

        await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, action, version=version))

        assert recovery.payment_id not in {
            r.payment_id for r in scheduler.card_budgets.of("merchant_test", VISA).reservations
        }, action


async def test_a_stop_after_the_attempts_timer_fired_keeps_its_slot_until_the_executor_says_it_sent_nothing(
    scheduler: Scheduler,
) -> None:
    """Once the attempt's timer fired the executor may be charging it, and a stop does not undo that: the slot
    stays. The executor's refusal (it had heard of the cancel first) gives it back; the stop's `payment.cancelled`
    is told once."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    planned = scheduler.planned(recovery)
    scheduler.clock.current = planned.due_at
    assert await scheduler.loop.fire_due() == 1

    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "cancel_invoice", version=2))
    assert scheduler.recovery(recovery.payment_id).status is RecoveryStatus.CANCELLED
    assert [r.attempt_number for r in scheduler.card_budgets.of("merchant_test", VISA).reservations] == [1]

    refusal = attempt_refused(
        recovery, 1, planned.attempt_id, "the invoice was closed (intake accepted its cancel, or its payment elsewhere)"
    )
    await scheduler.send("scheduler.attempt-refused", refusal)
    assert scheduler.card_budgets.of("merchant_test", VISA).reservations == ()
    assert len(scheduler.published(MessageType.PAYMENT_CANCELLED)) == 1


async def test_a_stop_after_the_due_time_but_before_the_timer_fired_gives_the_slot_back(scheduler: Scheduler) -> None:
    """The timer loop is behind (a restart, a backlog): the attempt's timer is still pending when the stop comes,
    the stop cancels it, nothing is ever sent, so its slot is given back."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    planned = scheduler.planned(recovery)
    scheduler.clock.current = planned.due_at + timedelta(minutes=5)

    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "pending_payment", version=2))

    assert scheduler.timers.stored[planned.timer_id].status.value == "cancelled"
    assert scheduler.card_budgets.of("merchant_test", VISA).reservations == ()


async def test_a_made_attempt_keeps_its_slot_with_its_outcome(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, at=T0 + timedelta(minutes=5)))
    second = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(second, AttemptPlan)

    await scheduler.send("scheduler.payment-succeeded", payment_succeeded(recovery, 2))

    slots = [(r.attempt_number, r.at, r.outcome) for r in scheduler.card_budgets.of("merchant_test", VISA).reservations]
    # Attempt 1 as recorded when attempt 2 was planned; attempt 2, made, keeps its planned slot.
    assert slots == [(1, T0 + timedelta(minutes=5), "declined"), (2, second.planned_at, "planned")]


async def test_a_recovery_held_back_by_the_budget_keeps_its_made_attempts_slot(scheduler: Scheduler) -> None:
    """Regression: a decline followed by no new attempt (a wait or an end) gave the made attempt's slot back, and
    the next recoveries took it."""
    scheduler.card_budgets.put(reserved(19))
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1))

    assert not isinstance(scheduler.recovery(recovery.payment_id).plan, AttemptPlan)
    budget = scheduler.card_budgets.of("merchant_test", VISA)
    assert len(budget.reservations) == 20 and budget.reservations[-1].payment_id == recovery.payment_id
    later = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(later))
    assert not isinstance(scheduler.recovery(later.payment_id).plan, AttemptPlan)


async def test_a_plan_that_loses_its_budget_every_time_is_handed_back_for_a_redelivery(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    budgets = scheduler.card_budgets
    original = budgets.reserve

    async def always_beaten(budget: CardBudget, tx: object) -> None:
        budgets.put(replace(budgets.of(budget.merchant_id, budget.token)))  # another writer, every time
        await original(budget, tx)  # type: ignore[arg-type]

    budgets.reserve = always_beaten  # type: ignore[method-assign]
    recovery = payment()

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    assert budgets.lost == 8 and requeues == [0]
    assert recovery.payment_id not in scheduler.recoveries.records
