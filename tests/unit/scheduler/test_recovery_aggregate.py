"""The Recovery aggregate alone (no handler, no storage) and the document its repository stores it as."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from recovery_contracts.payments import Address, AddressDetails
from recovery_scheduler.adapters.recoveries import recovery_document, recovery_from
from recovery_scheduler.domain.card_budgets import CardBudget, Reservation
from recovery_scheduler.domain.planning import Planning
from recovery_scheduler.domain.plans import AwaitBillingPlan, MonitoringPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.resume import ResumeRefused
from recovery_scheduler.domain.status import RecoveryStatus
from recovery_scheduler.domain.steps import planner_view

from .builders import T0, attempt_failed, monitoring_payment, payment, payment_succeeded, recovery_updated
from .fakes import CountingIds


def planning(now: object = T0, *, budgets: bool = True) -> Planning:
    return Planning(now, random.Random(7), CountingIds(), card_budgets={} if budgets else None)  # type: ignore[arg-type]


def test_the_first_plan_is_stored_at_version_one_and_its_timer_id_follows_version_zero() -> None:
    change = Recovery.start(payment(), planning())

    assert change.is_new and change.recovery.version == 1
    [timer] = change.timers
    assert timer.timer_id == f"execute:{change.recovery.payment_id}:1"
    assert not change.cancels_planned_timers and change.messages == ()


def test_a_monitoring_recovery_records_its_shadow_plan_and_replans_at_the_switch() -> None:
    change = Recovery.start(monitoring_payment(monitoring_seconds=3600), planning())

    recovery = change.recovery
    assert recovery.status is RecoveryStatus.MONITORING
    # The shadow stays visible in the plan, beside the re-plan at the switch.
    assert isinstance(recovery.plan, MonitoringPlan) and recovery.plan.switch_at == T0 + timedelta(hours=1)
    assert recovery.plan.shadow["kind"] == "attempt" and recovery.plan.due_at == T0 + timedelta(hours=1)
    [timer] = change.timers
    assert timer.timer_id == recovery.plan.timer_id and timer.due_at == T0 + timedelta(hours=1)
    assert recovery.monitoring_switch_at == T0 + timedelta(hours=1)
    assert recovery.history[0].reason.startswith("shadow plans: cascading would attempt 1 with ")


def test_a_plan_refuses_to_run_without_the_other_recoveries_budgets() -> None:
    with pytest.raises(ValueError, match="budgets on the payment's cards"):
        Recovery.start(payment(), planning(budgets=False))


def test_a_resume_needs_a_failed_recovery_with_a_token_that_may_still_be_charged() -> None:
    started = Recovery.start(payment(), planning()).recovery
    with pytest.raises(ResumeRefused, match="this one is scheduled"):
        started.resumed(T0, planning())
    failed = started.attempt_failed(attempt_failed(payment(), 1, "lost_card").payload, planning()).recovery
    assert failed.status is RecoveryStatus.FAILED
    with pytest.raises(ResumeRefused, match="every token of this payment is hard-declined"):
        failed.resumed(T0, planning())


@pytest.mark.parametrize("action", ["cancel_invoice", "success_payment_external"])
def test_an_invoice_the_billing_system_closed_after_the_recovery_failed_is_never_reopened(action: str) -> None:
    # Failed, then the invoice cancelled (or paid elsewhere): the status stays failed (its end was told), and no
    # later way of planning again (an operator's resume, a lifted hold, an updated card) may charge it.
    failed = replace(
        Recovery.start(payment(), planning()).recovery,
        status=RecoveryStatus.FAILED,
        business_status="FAILED_DUE_TO_RETRIES_EXHAUSTED",
        plan=None,
    )
    closed = failed.updated(recovery_updated(payment(), action, 1).payload, planning()).recovery

    assert (closed.status, closed.closed_by) == (RecoveryStatus.FAILED, action)
    assert recovery_from(recovery_document(closed)).closed_by == action  # kept by the store
    with pytest.raises(ResumeRefused, match=f"closed the invoice \\({action}\\)"):
        closed.resumed(T0, planning())
    assert closed._reopened("a card of the customer was updated", planning()) is None
    assert failed._reopened("a card of the customer was updated", planning()) is not None


def test_a_resume_waits_for_the_card_networks_budget() -> None:
    failed = replace(Recovery.start(payment(), planning()).recovery, status=RecoveryStatus.FAILED)
    # The merchant's other recoveries charged this Visa card 20 times in the last 30 days, the same amount:
    # Visa's rolling budget is used up.
    charged = tuple(
        Reservation("12345_pay_other", i + 1, T0 - timedelta(days=29) + timedelta(hours=i), 2250, "USD", "declined")
        for i in range(20)
    )
    budget = CardBudget("merchant_test", "pm_card_visa", 3, charged)
    context = replace(planning(), card_budgets={"pm_card_visa": budget})

    change = failed.resumed(T0, context)

    planned = change.recovery.history[-1]
    assert planned.what == "attempt_planned" and "by the card network's budget" in planned.reason
    assert "20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr 2026)" in (
        planned.reason
    )
    # The billing system's failed charge at T0 counts on the card too (21 in the window): the second oldest must
    # leave the 30-day window.
    assert planned.details["planned_at"] == T0 + timedelta(days=1, hours=1)


def test_a_resume_never_charges_a_card_the_billing_systems_decline_made_hard() -> None:
    # The billing system's own failure was a "never retry" decline (stolen card) on the only token: the planner ends
    # the recovery, and an operator may not charge it either.
    stolen = payment(first_error={"code": "stolen_card", "message": "Your card was declined."})
    failed = replace(Recovery.start(stolen, planning()).recovery, status=RecoveryStatus.FAILED)
    with pytest.raises(ResumeRefused, match="every token of this payment is hard-declined"):
        failed.resumed(T0, planning())


def test_a_resume_counts_the_billing_systems_charges_on_the_card_as_the_planner_does() -> None:
    # The billing system tried the Visa card 20 times today, its last failure now (T0): Visa's 20 a day are spent.
    busy = payment(billing_retry_count=20)
    failed = replace(Recovery.start(busy, planning()).recovery, status=RecoveryStatus.FAILED)

    planned = failed.resumed(T0, planning()).recovery.history[-1]

    assert planned.what == "attempt_planned" and "by the card network's budget" in planned.reason
    assert planned.details["planned_at"] > T0


def test_a_success_of_the_planned_attempt_cancels_nothing_and_any_other_does() -> None:
    recovery = Recovery.start(payment(), planning()).recovery

    assert not recovery.payment_succeeded(payment_succeeded(payment(), 1).payload, T0).cancels_planned_timers
    assert recovery.payment_succeeded(payment_succeeded(payment(), 2).payload, T0).cancels_planned_timers


def test_a_pause_cancels_the_plan_and_waits_for_the_billing_system() -> None:
    recovery = Recovery.start(payment(), planning()).recovery
    update = recovery_updated(recovery.payment, "pending_payment", version=2).payload

    change = recovery.updated(update, planning(budgets=False))

    assert change.cancels_planned_timers
    plan = change.recovery.plan
    assert change.recovery.paused and isinstance(plan, AwaitBillingPlan)
    # Waiting has an end: a re-plan at the recovery's horizon (60 days after its payment was created).
    [timer] = change.timers
    assert (timer.timer_id, timer.due_at) == (plan.timer_id, T0 + timedelta(days=60)) == (plan.timer_id, plan.due_at)


def test_a_recovery_is_stored_and_loaded_without_losing_anything() -> None:
    first = payment()
    recovery = Recovery.start(first, planning()).recovery
    recovery = recovery.attempt_failed(attempt_failed(first, 1).payload, planning()).recovery
    recovery = replace(
        recovery,
        version=4,
        plan=MonitoringPlan({"kind": "attempt", "reason": "shadow"}, T0, shadows={"smart": {"kind": "end"}}),
        card_updated_at={"pm_card_visa": T0},
        monitoring_switch_at=T0 + timedelta(days=1),
        intake_version=3,
        applied_messages=("scheduler.recovery-scheduled:m1",),
    )

    document = recovery_document(recovery, applied="scheduler.payment-succeeded:m2")

    assert document["_id"] == first.payment_id and document["merchant_id"] == "merchant_test"
    assert document["plan"] == {
        "kind": "monitoring",
        "shadow": {"kind": "attempt", "reason": "shadow"},
        "switch_at": T0,
        "due_at": None,
        "timer_id": None,
        "shadows": {"smart": {"kind": "end"}},
    }
    assert document["history"][1]["decline_class"] == "later"
    # An attempt is stored flat: its decline codes stand beside its other fields.
    assert document["attempts"][0] == {
        "number": 1,
        "token": "pm_card_visa",
        "at": T0 + timedelta(minutes=5),
        "outcome": "declined",
        "decline_code": "insufficient_funds",
        "error_code": "card_declined",
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "attempt_id": "12345_att_failed_1",
        "message": "Your card was declined.",
        "connector_transaction_id": "pi_declined_1",
    }
    loaded = recovery_from(document)
    assert loaded == replace(recovery, applied_messages=(*recovery.applied_messages, "scheduler.payment-succeeded:m2"))
    # A monitoring plan stored before the comparison (no `shadows`) still loads.
    del document["plan"]["shadows"]
    assert recovery_from(document).plan == MonitoringPlan({"kind": "attempt", "reason": "shadow"}, T0)


def test_the_planner_sees_the_billing_address_country_as_the_customers() -> None:
    with_address = payment(billing=Address(address=AddressDetails(country="AU")))
    recovery = Recovery.start(with_address, planning()).recovery
    assert planner_view(recovery, planning()).customer_country == "AU"
    without = Recovery.start(payment(billing=None), planning()).recovery
    assert planner_view(without, planning()).customer_country is None
