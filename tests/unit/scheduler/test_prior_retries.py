"""The card's retries before this system (the merchant's backfill, `daily_retry_history`): network budgets count them
as same-amount declined attempts, `max_retry_count` does not, and a newly imported history plans a planned attempt
again within the budget.

The payments' billing-system failure is at T0 (2026-01-15 12:00 UTC): it counts once on the card, beside the
history (both count: the conservative side of the networks' rules).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from recovery_contracts.messages import CARD_DATA_BACKFILL
from recovery_contracts.recovery import PriorRetries, RecoveryPayment
from recovery_scheduler.domain.budget_writes import Release
from recovery_scheduler.domain.budgets import CardUse
from recovery_scheduler.domain.card_budgets import CardBudget, Reservation
from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.model import Recheck, ScheduleAttempt, TokenState
from recovery_scheduler.domain.planner import decide_next
from recovery_scheduler.domain.planning import Planning
from recovery_scheduler.domain.plans import AttemptPlan, ReplanPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.standing import token_standings
from recovery_scheduler.domain.status import RecoveryStatus
from recovery_scheduler.domain.steps import planner_view
from recovery_scheduler.domain.updates import PRIOR_RETRIES_IMPORTED
from support.payments import scheduled

from .builders import T0, payment, recovery_updated
from .fakes import CountingIds, Scheduler
from .retry_builders import view

pytestmark = pytest.mark.unit

VISA = "pm_card_visa"
VISA_30_DAYS = "20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr 2026)"
VISA_UTC_DAY = "20 attempts per UTC day on the card (Hyperswitch helm chart defaults, as read 2026)"
NEXT_MIDNIGHT = datetime(2026, 1, 16, tzinfo=UTC)


def planning(now: datetime = T0, budgets: dict[str, CardBudget] | None = None) -> Planning:
    return Planning(now, random.Random(7), CountingIds(), card_budgets=budgets if budgets is not None else {})


def with_history(base: RecoveryPayment, *history: tuple[datetime, int]) -> RecoveryPayment:
    """`base` with its card's retries before this system: `count` in the day or hour ending at each time."""
    card = base.tokens[0]
    prior = tuple(PriorRetries(at=at, count=count) for at, count in history)
    return base.model_copy(update={"tokens": (card.model_copy(update={"prior_retries": prior}), *base.tokens[1:])})


# Ten days of two retries each, 20 to 11 days ago: with the billing system's failure, Visa's 20 same-amount
# attempts in 30 days are used until the first two leave the window (T0 + 10 days).
FULL_MONTH = tuple((T0 - timedelta(days=20 - i), 2) for i in range(10))


# -- the planner ----------------------------------------------------------------------------------------------


def test_the_planner_counts_the_snapshots_prior_retries_within_the_lookback_as_same_amount_declines() -> None:
    in_paris = T0.astimezone(timezone(timedelta(hours=1)))
    old_and_new = with_history(payment(), (T0 - timedelta(days=32), 5), (T0 - timedelta(days=3), 2), (in_paris, 1))
    recovery = Recovery.new(old_and_new, T0)

    [token] = planner_view(recovery, planning()).tokens

    # Older than the 31 days any reservation counts: left out. Each retry at the end of its day or hour, in UTC.
    assert token.prior_uses == (*(CardUse(T0 - timedelta(days=3)),) * 2, CardUse(T0))
    assert all(use.same_amount and use.declined and use.at.tzinfo is UTC for use in token.prior_uses)


def test_prior_retries_filling_visas_30_days_hold_the_attempt_until_the_window_frees_a_slot() -> None:
    change = Recovery.start(with_history(payment(), *FULL_MONTH), planning())

    plan = change.recovery.plan
    assert isinstance(plan, ReplanPlan) and plan.at == T0 + timedelta(days=10)
    assert plan.reason == f"network budget used up ({VISA_30_DAYS}); token {VISA} has budget again then"
    assert change.timers[0].due_at == T0 + timedelta(days=10)

    # When the slot frees, the attempt is planned.
    later = planning(T0 + timedelta(days=10))
    attempt = change.recovery.replanned(later).recovery.plan
    assert isinstance(attempt, AttemptPlan) and attempt.attempt_number == 1
    assert attempt.planned_at >= T0 + timedelta(days=10)


def test_the_same_history_older_than_31_days_plans_as_before() -> None:
    old = tuple((at - timedelta(days=21), count) for at, count in FULL_MONTH)  # 41 to 32 days ago

    with_old_history = Recovery.start(with_history(payment(), *old), planning()).recovery
    without = Recovery.start(payment(), planning()).recovery

    assert planner_view(with_old_history, planning()).tokens[0].prior_uses == ()
    assert isinstance(with_old_history.plan, AttemptPlan) and isinstance(without.plan, AttemptPlan)
    assert with_old_history.plan.planned_at == without.plan.planned_at <= T0 + timedelta(minutes=6)


def test_prior_retries_do_not_count_towards_max_retry_count() -> None:
    # max_retry_count 9, the billing system's 1: 15 earlier retries would have used it up.
    busy = with_history(payment(), (T0 - timedelta(days=10), 15))
    assert busy.retry.max_retry_count == 9

    recovery = Recovery.start(busy, planning()).recovery

    assert isinstance(recovery.plan, AttemptPlan) and recovery.plan.attempt_number == 1
    view = planner_view(recovery, planning())
    [standing] = token_standings(view, RetryConfig(max_retry_count=9))
    assert standing.retries == 1  # the billing system's, as before
    assert len(standing.budget_uses) == 1 + 15


def test_prior_retries_today_filling_visas_utc_day_wait_for_the_next_utc_midnight() -> None:
    # 12 retries this morning, 7 charges of the merchant's other invoices (another amount) and the billing
    # system's failure: Visa's 20 a day (any amount) are used; its 30 days (same amount) count 13.
    other_amount = CardBudget(
        "merchant_test",
        VISA,
        1,
        tuple(Reservation(f"12345_pay_other_{i}", 1, T0 - timedelta(hours=i + 1), 9900, "USD") for i in range(7)),
    )
    context = planning(budgets={VISA: other_amount})
    without = Recovery.start(payment(), context).recovery
    assert isinstance(without.plan, AttemptPlan) and without.plan.planned_at < NEXT_MIDNIGHT

    change = Recovery.start(with_history(payment(), (T0 - timedelta(hours=2), 12)), context)

    plan = change.recovery.plan
    assert isinstance(plan, ReplanPlan) and plan.at == NEXT_MIDNIGHT
    assert plan.reason == f"network budget used up ({VISA_UTC_DAY}); token {VISA} has budget again then"
    at_midnight = change.recovery.replanned(planning(NEXT_MIDNIGHT, {VISA: other_amount})).recovery.plan
    assert isinstance(at_midnight, AttemptPlan) and at_midnight.planned_at >= NEXT_MIDNIGHT


def test_a_full_utc_day_of_prior_retries_allows_no_attempt_before_the_next_midnight() -> None:
    today = (CardUse(T0 - timedelta(hours=1)),) * 20
    recovery = view(tokens=(TokenState("pm_primary", "Visa", prior_uses=today),), billing_retry_count=1)

    decision = decide_next(recovery, T0, RetryConfig(), random.Random(7))

    # Visa's 30 days count the same 20: the wait is theirs, later than midnight.
    assert isinstance(decision, Recheck) and decision.at >= NEXT_MIDNIGHT
    assert VISA_UTC_DAY in decision.reason and VISA_30_DAYS in decision.reason
    bare = replace(recovery, tokens=(TokenState("pm_primary", "Visa"),))
    without = decide_next(bare, T0, RetryConfig(), random.Random(7))
    assert isinstance(without, ScheduleAttempt) and without.at < NEXT_MIDNIGHT


# -- a history imported while an attempt is planned -------------------------------------------------------------


def test_a_backfill_bringing_prior_retries_plans_the_planned_attempt_again_within_the_budget() -> None:
    started = Recovery.start(payment(), planning()).recovery
    first = started.plan
    assert isinstance(first, AttemptPlan) and first.due_at > T0
    update = recovery_updated(with_history(started.payment, *FULL_MONTH), CARD_DATA_BACKFILL, version=2).payload

    change = started.updated(update, planning())

    recovery = change.recovery
    assert recovery.payment.tokens[0].prior_retries == update.payment.tokens[0].prior_retries
    assert isinstance(recovery.plan, ReplanPlan) and recovery.plan.at == T0 + timedelta(days=10)
    assert VISA_30_DAYS in recovery.plan.reason
    assert [(n.what, n.reason) for n in recovery.history[-2:]] == [
        ("planned_again", PRIOR_RETRIES_IMPORTED),
        ("replan_planned", recovery.plan.reason),
    ]
    # As any re-plan: the attempt's timer cancelled, its budget slot given back, the card data untouched.
    assert change.cancels_planned_timers and [t.timer_id for t in change.timers] == [recovery.plan.timer_id]
    writes = change.budget_writes(planning(), T0)
    assert writes.release == (Release("merchant_test", VISA, started.payment_id, 1, started.plan.timer_id),)
    assert writes.reserve == ()
    assert recovery.card_updated_at == {} and recovery.intake_version == 2


def test_a_backfill_with_more_prior_retries_plans_an_attempt_on_the_card_later_and_moves_its_slot() -> None:
    # 18 retries 29 days and 23 hours ago: with the billing system's failure one slot is left until they leave
    # the window in an hour; then the ladder's attempt is planned at once again.
    started = Recovery.start(with_history(payment(), (T0 - timedelta(days=30, hours=-1), 18)), planning()).recovery
    first = started.plan
    assert isinstance(first, AttemptPlan)
    more = with_history(started.payment, (T0 - timedelta(days=30, hours=-1), 19))
    now = T0 + timedelta(seconds=30)

    change = started.updated(recovery_updated(more, CARD_DATA_BACKFILL, version=2).payload, planning(now))

    plan = change.recovery.plan
    assert isinstance(plan, ReplanPlan) and plan.at == T0 + timedelta(hours=1)
    assert change.budget_writes(planning(now), now).release == (
        Release("merchant_test", VISA, started.payment_id, 1, first.timer_id),
    )
    again = change.recovery.replanned(planning(T0 + timedelta(hours=1)))
    attempt = again.recovery.plan
    assert isinstance(attempt, AttemptPlan) and attempt.attempt_number == 1
    assert attempt.planned_at > T0 + timedelta(hours=1)
    assert attempt.timer_id != first.timer_id  # the same attempt number planned again: a timer id of its own
    [reserved] = again.budget_writes(planning(T0 + timedelta(hours=1)), T0).reserve
    assert [(r.attempt_number, r.at) for r in reserved.reservations] == [
        (0, started.payment.transaction_created_at),  # the billing system's try
        (1, attempt.planned_at),
    ]


def test_a_backfill_with_unchanged_prior_retries_leaves_the_plan_standing() -> None:
    started = Recovery.start(with_history(payment(), (T0 - timedelta(days=3), 2)), planning()).recovery
    renewed = started.payment.tokens[0].model_copy(update={"card_exp_month": "04", "card_exp_year": "2031"})
    same_history = started.payment.model_copy(update={"tokens": (renewed,)})

    change = started.updated(recovery_updated(same_history, CARD_DATA_BACKFILL, version=2).payload, planning())

    assert change.recovery.plan == started.plan and not change.cancels_planned_timers and change.timers == ()
    assert change.recovery.history[-1].reason == f"{CARD_DATA_BACKFILL}: recorded"
    assert change.budget_writes(planning(), T0).release == ()
    # The card data changed: that sets card_updated_at, as before.
    assert change.recovery.card_updated_at == {VISA: T0}


def test_a_change_of_prior_retries_alone_does_not_count_as_a_card_update() -> None:
    started = Recovery.start(payment(), planning()).recovery

    change = started.updated(
        recovery_updated(with_history(started.payment, *FULL_MONTH), CARD_DATA_BACKFILL, version=2).payload,
        planning(),
    )

    assert change.recovery.card_updated_at == {}


def test_an_attempt_already_due_or_a_paused_recovery_is_not_planned_again() -> None:
    started = Recovery.start(payment(), planning()).recovery
    first = started.plan
    assert isinstance(first, AttemptPlan)
    update = recovery_updated(with_history(started.payment, *FULL_MONTH), CARD_DATA_BACKFILL, version=2).payload

    # Its timer is due: the attempt is in flight and keeps its slot.
    due = started.updated(update, planning(first.due_at))
    assert due.recovery.plan == first and not due.cancels_planned_timers
    paused = started.updated(recovery_updated(started.payment, "pending_payment", version=2).payload, planning())
    waiting = paused.recovery.updated(update.model_copy(update={"version": 3}), planning())
    assert waiting.recovery.plan == paused.recovery.plan and waiting.recovery.status is RecoveryStatus.AWAITING_BILLING


def test_another_failure_reported_with_new_prior_retries_plans_again_as_well() -> None:
    started = Recovery.start(payment(), planning()).recovery
    failed_again = with_history(started.payment, *FULL_MONTH)

    change = started.updated(recovery_updated(failed_again, "schedule_failed_payment", version=2).payload, planning())

    assert isinstance(change.recovery.plan, ReplanPlan) and change.recovery.plan.at == T0 + timedelta(days=10)
    assert [n.what for n in change.recovery.history[-3:]] == [
        "billing_system_failure",
        "planned_again",
        "replan_planned",
    ]


# -- through the handler ----------------------------------------------------------------------------------------


async def test_a_backfill_with_prior_retries_cancels_the_attempts_timer_and_gives_its_slot_back(
    scheduler: Scheduler,
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    first = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(first, AttemptPlan)
    assert [
        (r.payment_id, r.attempt_number) for r in scheduler.card_budgets.of("merchant_test", VISA).reservations
    ] == [
        (recovery.payment_id, 0),  # the billing system's try
        (recovery.payment_id, 1),
    ]

    await scheduler.send(
        "scheduler.recovery-updated",
        recovery_updated(with_history(recovery, *FULL_MONTH), CARD_DATA_BACKFILL, version=1),
    )

    stored = scheduler.recovery(recovery.payment_id)
    assert isinstance(stored.plan, ReplanPlan) and stored.plan.at == T0 + timedelta(days=10)
    assert scheduler.timers.status_of(recovery.payment_id) == {
        first.timer_id: "cancelled",
        stored.plan.timer_id: "pending",
    }
    assert [r.attempt_number for r in scheduler.card_budgets.of("merchant_test", VISA).reservations] == [0]
    assert stored.card_updated_at == {}
