"""What each network limit counts (attempts or declines, any amount or the same one), reservations planned
after the time asked about, and which reservations a recovery's change takes or gives back."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.budget_writes import Release, budget_writes
from recovery_scheduler.domain.budgets import CardUse, budget_for
from recovery_scheduler.domain.card_budgets import CardBudget, Reservation
from recovery_scheduler.domain.planning import Change, Planning
from recovery_scheduler.domain.plans import AttemptPlan
from recovery_scheduler.domain.recovery import Recovery

from .builders import T0, attempt_failed, attempt_refused, payment, recovery_updated
from .fakes import CountingIds

pytestmark = pytest.mark.unit

NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_visas_30_days_count_the_same_amount_and_currency_and_its_day_any_amount() -> None:
    visa = budget_for("visa")
    month_ago = [NOON - timedelta(days=29) + timedelta(hours=i) for i in range(20)]
    other_amounts = [CardUse(at, same_amount=False) for at in month_ago]
    assert visa.allows(other_amounts, NOON)
    assert visa.earliest_allowed([CardUse(at) for at in month_ago], NOON) == month_ago[0] + timedelta(days=30)
    # Hyperswitch's 20 a day count every authorization on the card, whatever its amount.
    today = [CardUse(NOON - timedelta(minutes=i + 1), same_amount=False) for i in range(20)]
    assert visa.earliest_allowed(today, NOON) == datetime(2026, 5, 5, tzinfo=UTC)


def test_mastercards_24_hours_count_declines_and_its_30_days_the_same_amount() -> None:
    mc = budget_for("mastercard")
    late = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    after_midnight = datetime(2026, 5, 5, 1, tzinfo=UTC)
    succeeded = [CardUse(late + timedelta(minutes=i), declined=False) for i in range(10)]
    assert mc.allows(succeeded, after_midnight)  # the UTC day is fresh, and no decline in the 24 hours
    declined = [replace(use, declined=True) for use in succeeded]
    assert mc.earliest_allowed(declined, after_midnight) == late + timedelta(days=1)
    # 35 attempts in 30 days (19 hours apart: within every daily limit) at other amounts: not counted.
    spread = [NOON - timedelta(days=27) + timedelta(hours=19 * i) for i in range(35)]
    assert mc.allows([CardUse(at, same_amount=False) for at in spread], NOON + timedelta(days=1))
    assert not mc.allows([CardUse(at) for at in spread], NOON + timedelta(days=1))


def test_reservations_planned_later_count_in_every_window_that_would_hold_the_new_attempt() -> None:
    """20 slots reserved ten days ahead: an attempt tomorrow would share a 30-day window with all of them."""
    reserved = [NOON + timedelta(days=10, minutes=i) for i in range(20)]
    visa = budget_for("visa")
    assert visa.earliest_allowed(reserved, NOON + timedelta(days=1)) == reserved[0] + timedelta(days=30)
    assert visa.allows(reserved, reserved[0] - timedelta(days=30))  # a window that holds none of them
    # The UTC day counts the whole day, also the part after the time asked about.
    later_today = [CardUse(NOON + timedelta(minutes=i), same_amount=False) for i in range(20)]
    assert visa.earliest_allowed(later_today, NOON - timedelta(hours=1)) == datetime(2026, 5, 5, tzinfo=UTC)


def test_a_full_budget_names_the_limits_that_hold_it_with_their_editions() -> None:
    visa = budget_for("visa")
    month = [CardUse(NOON - timedelta(days=29) + timedelta(hours=i)) for i in range(20)]
    assert visa.why_full(month, NOON) == (
        "20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr 2026)"
    )
    limits = [limit.describe() for limit in budget_for("mastercard").limits]
    assert limits == [
        "10 attempts per UTC day on the card (Hyperswitch helm chart defaults, as read 2026)",
        "10 declines per rolling 24 h on the card (Mastercard rules as summarised in recovery-rules.md (2026))",
        "35 attempts per rolling 30 days on the card, same amount and currency "
        "(Mastercard rules as summarised in recovery-rules.md (2026))",
    ]


# -- which reservations a change takes and gives back -------------------------------------------------------


def planning(budgets: dict[str, CardBudget] | None = None) -> Planning:
    return Planning(T0, random.Random(7), CountingIds(), card_budgets=budgets if budgets is not None else {})


def test_a_new_plan_reserves_its_slot_on_the_budget_it_read() -> None:
    read = CardBudget("merchant_test", "pm_card_visa", 4, (Reservation("12345_pay_other", 1, T0, 2250, "USD"),))
    change = Recovery.start(payment(), planning({"pm_card_visa": read}))

    writes = change.budget_writes(planning({"pm_card_visa": read}), T0)

    plan = change.recovery.plan
    assert plan is not None and writes.release == ()
    [budget] = writes.reserve
    assert budget.version == 4  # the compare-and-set is on the version read
    assert budget.reservations == (
        read.reservations[0],
        # The billing system's own try on the card, at its failure: the merchant's other recoveries count it too.
        Reservation(change.recovery.payment_id, 0, T0, 2250, "USD", "declined"),
        Reservation(change.recovery.payment_id, 1, plan.planned_at, 2250, "USD", "planned"),  # type: ignore[union-attr]
    )


def test_another_invoices_billing_system_tries_on_the_card_count_for_this_one() -> None:
    """Two invoices of one card, each failed four times at the billing system: each recovery counted only its own
    four, so together they could plan past a network's limit. The first one's reservations carry its four."""
    first = payment(billing_retry_count=4)
    x = Recovery.start(first, planning())
    [budget] = x.budget_writes(planning(), T0).reserve
    assert [(r.attempt_number, r.outcome) for r in budget.reservations][:4] == [(0, "declined")] * 4

    second = payment(billing_retry_count=4)
    y = Recovery.new(second, T0)
    others = budget.uses_for(y, T0 - timedelta(days=31))
    assert len(others) == 5 and sum(use.at == first.transaction_created_at for use in others) == 4  # and x's plan


def test_a_made_attempt_keeps_its_slot_with_its_outcome_and_the_next_one_reserves_beside_it() -> None:
    started = Recovery.start(payment(), planning()).recovery
    failure = attempt_failed(payment(payment_id=started.payment_id), 1).payload
    budgets = {"pm_card_visa": budget_writes(Change(None, started), {}, T0).reserve[0]}

    change = started.attempt_failed(failure, planning(budgets))

    [budget] = change.budget_writes(planning(budgets), T0).reserve
    assert [(r.attempt_number, r.at, r.outcome) for r in budget.reservations] == [
        (0, T0, "declined"),  # the billing system's try
        (1, failure.attempted_at, "declined"),
        (2, change.recovery.plan.planned_at, "planned"),  # type: ignore[union-attr]
    ]


def test_an_attempt_reported_rewrites_its_cards_slot_with_when_it_was_made_though_the_next_plan_is_elsewhere() -> None:
    """The slot held the planned time; the attempt was made seconds later (the timer's lateness, the connector's
    pacing). Its card's budget is rewritten with the real time and outcome even when the next attempt goes to
    another card, so another recovery's rolling window reads it where it is."""
    two_cards = payment(tokens=("pm_card_visa", "pm_card_mastercard"))
    started = Recovery.start(two_cards, planning()).recovery
    assert isinstance(started.plan, AttemptPlan)
    visa = budget_writes(Change(None, started), {}, T0).reserve[0]
    made_at = started.plan.planned_at + timedelta(seconds=20)
    failure = attempt_failed(
        payment(payment_id=started.payment_id, tokens=("pm_card_visa", "pm_card_mastercard")),
        1,
        "expired_card",  # a `fix` decline: the next attempt goes to the other card
        at=made_at,
    ).payload

    change = started.attempt_failed(failure, planning({"pm_card_visa": visa}))

    assert isinstance(change.recovery.plan, AttemptPlan) and change.recovery.plan.token == "pm_card_mastercard"
    written = {b.token: b for b in change.budget_writes(planning({"pm_card_visa": visa}), T0).reserve}
    assert [(r.attempt_number, r.at, r.outcome) for r in written["pm_card_visa"].reservations if r.attempt_number] == [
        (1, made_at, "declined")
    ]


def test_a_made_attempt_keeps_its_slot_when_nothing_follows_it() -> None:
    started = Recovery.start(payment(), planning()).recovery
    failure = attempt_failed(payment(payment_id=started.payment_id), 1, "lost_card").payload

    change = started.attempt_failed(failure, planning())

    assert change.recovery.ended
    assert change.budget_writes(planning(), T0).release == ()


def test_a_stop_gives_the_planned_attempts_slot_back_if_its_timer_had_not_fired() -> None:
    """The executor may be charging an attempt whose timer fired, and a stop does not undo that: the slot is given
    back only if the change cancels the attempt's timer while still pending (`Release.timer_id`)."""
    started = Recovery.start(payment(), planning()).recovery
    assert isinstance(started.plan, AttemptPlan)
    for action in ("cancel_invoice", "success_payment_external", "pending_payment"):
        update = recovery_updated(payment(payment_id=started.payment_id), action, version=2).payload

        change = started.updated(update, replace(planning(), card_budgets=None))

        assert change.budget_writes(None, T0).release == (
            Release("merchant_test", "pm_card_visa", started.payment_id, 1, started.plan.timer_id),
        ), action


def test_an_attempt_the_executor_refused_gives_its_slot_back_whether_still_planned_or_stopped_since() -> None:
    started = Recovery.start(payment(), planning()).recovery
    assert isinstance(started.plan, AttemptPlan)
    fired = replace(planning(), now=started.plan.due_at)
    refusal = attempt_refused(payment(payment_id=started.payment_id), 1, started.plan.attempt_id).payload
    stop = recovery_updated(payment(payment_id=started.payment_id), "cancel_invoice", version=2).payload
    stopped = started.updated(stop, fired).recovery
    unconditional = (Release("merchant_test", "pm_card_visa", started.payment_id, 1),)

    for recovery in (started, stopped):
        change = recovery.attempt_refused(refusal, fired)
        assert change.budget_writes(fired, fired.now).release == unconditional, recovery.status

    # Made meanwhile (a copy's outcome), or planned again on the same card under that number: the slot stays.
    made = started.attempt_failed(attempt_failed(payment(payment_id=started.payment_id), 1).payload, fired).recovery
    assert made.attempt_refused(refusal, fired).budget_writes(fired, fired.now).release == ()


def test_a_late_refusal_gives_back_no_slot_of_a_later_plan_of_the_same_attempt_number() -> None:
    """A slot is the payment's and the attempt number's: a refusal of attempt 1 that comes after the recovery was
    paused, resumed (attempt 1 planned again under another id, maybe being charged now) and paused again gives
    nothing back; a refusal of that later plan does."""
    shared = planning()  # one source of attempt ids
    started = Recovery.start(payment(), shared).recovery
    assert isinstance(started.plan, AttemptPlan)
    now = replace(shared, now=started.plan.due_at)
    same = payment(payment_id=started.payment_id)
    paused = started.updated(recovery_updated(same, "pending_payment", version=2).payload, now).recovery
    resumed = paused.updated(recovery_updated(same, "schedule_failed_payment", version=3).payload, now).recovery
    again = resumed.plan
    assert isinstance(again, AttemptPlan) and again.attempt_number == 1 and again.attempt_id != started.plan.attempt_id
    later = replace(now, now=again.due_at)
    paused_again = resumed.updated(recovery_updated(same, "pending_payment", version=4).payload, later).recovery

    first = attempt_refused(same, 1, started.plan.attempt_id).payload
    assert paused_again.attempt_refused(first, later).budget_writes(later, later.now).release == ()
    second = attempt_refused(same, 1, again.attempt_id).payload
    assert paused_again.attempt_refused(second, later).budget_writes(later, later.now).release == (
        Release("merchant_test", "pm_card_visa", started.payment_id, 1),
    )


def test_an_attempt_planned_on_another_card_gives_the_first_cards_slot_back() -> None:
    started = Recovery.start(payment(tokens=("pm_card_visa", "pm_card_amex")), planning()).recovery
    moved = replace(
        started,
        plan=replace(started.plan, token="pm_card_amex", attempt_id="12345_att_other"),  # type: ignore[type-var]
    )

    writes = Change(started, moved).budget_writes(planning(), T0)

    assert [b.token for b in writes.reserve] == ["pm_card_amex"]
    assert writes.release == (Release("merchant_test", "pm_card_visa", started.payment_id, 1, started.plan.timer_id),)


def test_a_plan_without_the_budget_it_reserves_on_is_refused() -> None:
    change = Recovery.start(payment(), planning())
    with pytest.raises(ValueError, match="reserves its slot"):
        change.budget_writes(None, T0)
