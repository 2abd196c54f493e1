"""A `never` decline on a card is the merchant's, not one recovery's: through the handlers on in-memory
repositories, a recovery that meets one (a lost or stolen card, in its own attempt or in the billing system's
failure it starts from) records it on the card's budget; the merchant's other recoveries with an attempt planned on
the card plan again at once and do not charge it, later ones never plan on it, and another merchant's are not
touched.

The payments' billing-system failure lies 40 days back, outside every window: only this system's attempts count.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from recovery_contracts.payments import ErrorDetails
from recovery_scheduler.domain.card_budgets import HardDecline
from recovery_scheduler.domain.status import RecoveryStatus
from recovery_scheduler.domain.timers import card_check_timer
from recovery_scheduler.http import tracker_view
from support.payments import scheduled

from .builders import T0, attempt_failed
from .builders import merchant_payment as payment
from .fakes import Scheduler, StoredTimer

VISA = "pm_card_visa"
OTHER = "pm_card_mastercard"


def counted() -> tuple[float, float, float]:
    """The cards found hard-declined, the attempts dropped for them and the cascading recoveries that failed, as
    the process's counters stand."""
    found, dropped, failed = (
        REGISTRY.get_sample_value(name, labels) or 0.0
        for name, labels in (
            ("recovery_cards_hard_declined_total", {}),
            ("recovery_attempts_dropped_for_hard_declines_total", {}),
            ("recovery_recoveries_finished_total", {"algorithm": "cascading", "outcome": "failed"}),
        )
    )
    return found, dropped, failed


async def test_a_stolen_card_in_one_recovery_stops_the_merchants_others_on_the_card(scheduler: Scheduler) -> None:
    finder, waiting, two_cards = payment(), payment(), payment(tokens=(VISA, OTHER))
    elsewhere = payment(merchant_id="merchant_other")
    for each in (finder, waiting, two_cards, elsewhere):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    cards_before, dropped_before, failed_before = counted()
    waiting_timer = scheduler.planned(waiting).timer_id

    await scheduler.send("scheduler.attempt-failed", attempt_failed(finder, 1, "stolen_card"))

    finder_failed = scheduler.recovery(finder.payment_id)
    assert finder_failed.status is RecoveryStatus.FAILED
    budget = scheduler.card_budgets.of("merchant_test", VISA)
    found = HardDecline(finder.payment_id, 1, T0 + timedelta(minutes=5), "decline_code=stolen_card")
    assert budget.hard_declines == (found,)
    checks = {timer_id.split(":")[1] for timer_id in scheduler.timers.stored if ":card:" in timer_id}
    assert checks == {waiting.payment_id, two_cards.payment_id}  # the ones planned on the card, this merchant's
    assert await scheduler.loop.fire_due() == 2

    # Planned on the card and no other: ends as hard-declined, its attempt's timer cancelled and its slot given back.
    stopped = scheduler.recovery(waiting.payment_id)
    assert stopped.status is RecoveryStatus.FAILED, stopped.plan
    assert scheduler.timers.stored[waiting_timer].status.value == "cancelled"
    assert waiting.payment_id not in {
        r.payment_id for r in scheduler.card_budgets.of("merchant_test", VISA).reservations
    }
    notes = " ".join(n.reason for n in stopped.history)
    assert f"hard-declined in payment {finder.payment_id}" in notes and "stolen_card" in notes
    # With a second card: its attempt moves there, and the process tracker says why the first is out.
    assert scheduler.planned(two_cards).token == OTHER
    budgets = {VISA: scheduler.card_budgets.of("merchant_test", VISA)}
    tokens = tracker_view(scheduler.recovery(two_cards.payment_id), None, budgets)["tokens"]
    assert [(t["token"], t["hard_declined"], t["hard_declined_in"]) for t in tokens] == [
        (VISA, True, finder.payment_id),
        (OTHER, False, None),
    ]
    # Another merchant's recovery on the same card id still plans on it.
    assert scheduler.planned(elsewhere).token == VISA

    # A recovery of the merchant that starts later never plans on the card.
    later = payment(tokens=(VISA, OTHER))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(later))
    assert scheduler.planned(later).token == OTHER
    # Counted: one card found, two planned attempts dropped for it, two recoveries failed (the finder, and the one
    # that ended at its re-plan).
    assert counted() == (cards_before + 1, dropped_before + 2, failed_before + 2)


async def test_a_never_decline_from_the_billing_system_is_the_merchants_too(scheduler: Scheduler) -> None:
    """The billing system's own failure a recovery starts from (here `lost_card` on its primary card, an hour
    ago) counts as the recovery's attempts do."""
    waiting = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(waiting))
    lost = payment(first_error=ErrorDetails(code="lost_card", message="Lost card"), transaction_created_at=T0)

    await scheduler.send("scheduler.recovery-scheduled", scheduled(lost))

    assert scheduler.recovery(lost.payment_id).status is RecoveryStatus.FAILED
    [decline] = scheduler.card_budgets.of("merchant_test", VISA).hard_declines
    assert (decline.payment_id, decline.attempt_number) == (lost.payment_id, 0)
    assert await scheduler.loop.fire_due() == 1
    assert scheduler.recovery(waiting.payment_id).status is RecoveryStatus.FAILED


async def test_an_attempt_planned_on_another_card_or_already_due_stands(scheduler: Scheduler) -> None:
    """The check plans again only an attempt on the hard-declined card whose timer is not due yet: one already due
    is in flight at the executor (it stands, as any attempt in flight)."""
    finder, due = payment(), payment()
    for each in (finder, due):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    plan = scheduler.planned(due)
    await scheduler.send("scheduler.attempt-failed", attempt_failed(finder, 1, "stolen_card"))
    scheduler.clock.advance(plan.due_at - scheduler.clock.now())

    await scheduler.loop.fire_due()

    assert scheduler.planned(due) == plan


async def test_a_re_plan_timer_firing_while_an_attempt_is_planned_on_a_chargeable_card_changes_nothing(
    scheduler: Scheduler,
) -> None:
    """Before hard declines were shared, a re-plan timer found an attempt planned only if it had outlived its plan;
    planning again then would have left two timers for one attempt. It now changes nothing."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    plan, timers = scheduler.planned(recovery), set(scheduler.timers.stored)
    now = scheduler.clock.now()
    stale = card_check_timer(recovery.payment_id, VISA, "12345_pay_gone", now)
    scheduler.timers.stored[stale.timer_id] = StoredTimer(stale)

    assert await scheduler.loop.fire_due() == 1

    assert scheduler.planned(recovery) == plan
    assert set(scheduler.timers.stored) - timers == {stale.timer_id}
