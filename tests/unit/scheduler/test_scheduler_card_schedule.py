"""The merchant's word on when a card may next be tried (`scheduled_at` of
`PUT /v2/recovery/data-backfill/update-token`, Hyperswitch's time for the token's next try), through the scheduler's
internal endpoint on in-memory repositories: none of the merchant's recoveries tries the card before it (those
planned sooner plan again at once, and the reason says why), an operator's resume neither (and it too comes sooner
when the word is lifted or moved, by the resume's rules); a card held back past a
recovery's retry window leaves it to the customer's other card, or ends it; a time now or past lifts the word, and
the recoveries it held back plan again at once (one it ended reopens, one it sent to the other card comes back to the
held card when that is the algorithm's choice again), as they do when it moves sooner."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from recovery_contracts.recovery import RetryAlgorithm
from recovery_contracts.timestamps import format_ms
from recovery_scheduler.domain.card_budgets import CardBudget
from recovery_scheduler.domain.model import AttemptOutcome, AttemptRecord
from recovery_scheduler.domain.plans import AttemptPlan, describe_plan, plan_from
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0, attempt_failed
from .builders import merchant_payment as payment
from .fakes import Scheduler
from .test_recovery_aggregate import planning
from .test_scheduler_token_status import OTHER, PATH, VISA, updates, word

HOLD = T0 + timedelta(days=5)


async def test_no_recovery_tries_the_card_before_the_merchants_time_until_it_is_lifted(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    one_card, two_cards = payment(), payment(tokens=(VISA, OTHER))
    for each in (one_card, two_cards):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    before = {p.payment_id: scheduler.planned(p).planned_at for p in (one_card, two_cards)}
    assert max(before.values()) < HOLD
    scheduled_before = updates("scheduled")

    answer = await operator.put(PATH, json=word(scheduled_at=format_ms(HOLD)))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["updated"], body["hard_declined"], body["recoveries_planned_again"]) == (True, False, 2), body
    assert f"before {HOLD.isoformat()}" in body["message"]
    assert scheduler.card_budgets.of("merchant_test", VISA).not_before == HOLD
    assert updates("scheduled") == scheduled_before + 1
    status = (await operator.get(PATH, params={"payment_processor_token": VISA})).json()
    assert status["scheduled_at"] == format_ms(HOLD)
    assert await scheduler.loop.fire_due() == 2
    for each in (one_card, two_cards):
        plan = scheduler.planned(each)
        assert plan.token == VISA and plan.planned_at >= HOLD, plan
        assert f"not before {HOLD.isoformat()}, as the merchant asked for card {VISA}" in plan.reason
    # A recovery that starts now plans after it too; another merchant's card of the same id is not held back.
    later, elsewhere = payment(), payment(merchant_id="merchant_other")
    for each in (later, elsewhere):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    assert scheduler.planned(later).planned_at >= HOLD
    assert scheduler.planned(elsewhere).planned_at < HOLD

    # Said again: nothing changes.
    again = (await operator.put(PATH, json=word(scheduled_at=format_ms(HOLD)))).json()
    assert (again["updated"], again["recoveries_planned_again"]) == (False, 0)
    assert "already" in again["message"]

    # Lifted (a time now): the recoveries the word held back plan again at once and try the card sooner; a recovery
    # that plans from now does too; the other merchant's is not asked.
    elsewhere_plan = scheduler.planned(elsewhere)
    lifted = (await operator.put(PATH, json=word(scheduled_at=format_ms(T0)))).json()
    assert (lifted["updated"], lifted["recoveries_planned_again"]) == (True, 3), lifted
    assert "no longer held back" in lifted["message"] and "3 that it held back" in lifted["message"]
    assert await scheduler.loop.fire_due() == 3
    for each in (one_card, two_cards, later):
        plan = scheduler.planned(each)
        assert plan.token == VISA and plan.planned_at < HOLD and plan.held_until is None, plan
        again = scheduler.recovery(each.payment_id).history[-2]
        assert again.what == "planned_again", again
        assert again.reason == f"the merchant's hold on card {VISA} until {HOLD.isoformat()} lifted"
    assert scheduler.planned(elsewhere) == elsewhere_plan
    fresh = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(fresh))
    assert scheduler.planned(fresh).planned_at < HOLD
    status = (await operator.get(PATH, params={"payment_processor_token": VISA})).json()
    assert status["scheduled_at"] is None


async def test_a_word_moved_sooner_brings_the_attempts_it_held_back_to_the_new_time_and_leaves_the_others(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    """A recovery whose planned attempt is later than the word for reasons of its own (here: its profile's ladder
    waits a week) is not moved: the word never held it back."""
    held, base = payment(), payment()
    own_time = base.model_copy(update={"retry": base.retry.model_copy(update={"ladder_seconds": (7 * 86400,)})})
    for each in (held, own_time):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    natural = scheduler.planned(own_time)
    assert natural.planned_at > T0 + timedelta(days=7), natural
    hold, sooner = T0 + timedelta(days=5), T0 + timedelta(days=2)
    await operator.put(PATH, json=word(scheduled_at=format_ms(hold)))
    await scheduler.loop.fire_due()
    assert scheduler.planned(held).held_until == hold
    assert scheduler.planned(own_time) == natural

    moved = (await operator.put(PATH, json=word(scheduled_at=format_ms(sooner)))).json()

    assert (moved["updated"], moved["recoveries_planned_again"]) == (True, 1), moved
    told = "1 that it held back (an attempt planned later or on another card, or its retries run out) plan again now"
    assert told in moved["message"]
    assert await scheduler.loop.fire_due() == 1
    plan = scheduler.planned(held)
    assert sooner <= plan.planned_at < hold and plan.held_until == sooner, plan
    assert scheduler.recovery(held.payment_id).history[-2].reason == (
        f"the merchant's hold on card {VISA} until {hold.isoformat()} moved to {sooner.isoformat()}"
    )
    assert scheduler.planned(own_time) == natural


def test_an_operators_resume_waits_for_the_merchants_time_too() -> None:
    failed = replace(Recovery.start(payment(), planning()).recovery, status=RecoveryStatus.FAILED)
    held = CardBudget("merchant_test", VISA, 1, not_before=HOLD)

    change = failed.resumed(T0 + timedelta(hours=1), replace(planning(), card_budgets={VISA: held}))

    planned = change.recovery.history[-1]
    assert planned.what == "attempt_planned" and planned.details["planned_at"] == HOLD
    assert f"not before {HOLD.isoformat()}, as the merchant asked for card {VISA}" in planned.reason


def test_a_resume_the_word_held_back_comes_sooner_by_the_resumes_rules_when_the_word_is_lifted_or_moved() -> None:
    """The operator's time, not the planner's (its ladder and jitter, which the resume went past): planned again by the
    resume's rules, at the new word or at once, on the same card and attempt number, still marked as a resume."""
    ran_out = Recovery.start(payment(), planning()).recovery
    tried = tuple(AttemptRecord(n, VISA, T0 - timedelta(days=4 - n), AttemptOutcome.DECLINED) for n in (1, 2, 3))
    failed = replace(ran_out, status=RecoveryStatus.FAILED, attempts=tried)
    asked = T0 + timedelta(hours=1)
    held = replace(planning(), card_budgets={VISA: CardBudget("merchant_test", VISA, 1, not_before=HOLD)})
    resumed = failed.resumed(asked, held).recovery
    plan = resumed.plan
    assert isinstance(plan, AttemptPlan) and (plan.planned_at, plan.held_until, plan.resumed_at) == (HOLD, HOLD, asked)
    assert plan_from(describe_plan(plan)) == plan  # stored and read back with the resume's time

    sooner = HOLD - timedelta(days=3)
    moved = resumed.replanned(
        replace(planning(), card_budgets={VISA: CardBudget("merchant_test", VISA, 1, not_before=sooner)})
    )
    lifted = resumed.replanned(
        replace(planning(T0 + timedelta(hours=2)), card_budgets={VISA: CardBudget("merchant_test", VISA, 1)})
    )

    for change, at, until in ((moved, sooner, sooner), (lifted, T0 + timedelta(hours=2), None)):
        again = change.recovery
        assert again.status is RecoveryStatus.SCHEDULED and change.cancels_planned_timers, again
        plan = again.plan
        assert isinstance(plan, AttemptPlan), plan
        assert (plan.token, plan.attempt_number, plan.planned_at, plan.held_until) == (VISA, 4, at, until)
        assert plan.resumed_at == asked and plan.reason.startswith("resumed by an operator")
        [timer] = change.timers
        assert timer.due_at == plan.due_at
    assert lifted.recovery.history[-2].reason == f"the merchant's hold on card {VISA} until {HOLD.isoformat()} lifted"


@pytest.mark.parametrize("algorithm", [RetryAlgorithm.CASCADING, RetryAlgorithm.SMART])
def test_both_algorithms_say_when_the_word_held_their_attempt_back_and_the_plan_stores_it_only_then(
    algorithm: RetryAlgorithm,
) -> None:
    each = payment(algorithm=algorithm)
    held = replace(planning(), card_budgets={VISA: CardBudget("merchant_test", VISA, 1, not_before=HOLD)})
    early = replace(planning(), card_budgets={VISA: CardBudget("merchant_test", VISA, 1, not_before=T0)})

    plan = Recovery.start(each, held).recovery.plan
    free = Recovery.start(each, early).recovery.plan

    assert isinstance(plan, AttemptPlan) and plan.planned_at >= HOLD and plan.held_until == HOLD, plan
    assert isinstance(free, AttemptPlan) and free.planned_at < HOLD and free.held_until is None, free
    assert describe_plan(plan)["held_until"] == HOLD and plan_from(describe_plan(plan)) == plan
    assert "held_card" not in describe_plan(plan)  # its own card's word: no other card to name
    # Left out while None, so that the release before it reads the plan; a later release's field is ignored.
    assert "held_until" not in describe_plan(free) and plan_from(describe_plan(free)) == free
    assert plan_from({**describe_plan(free), "later_field": 1}) == free


async def test_a_card_held_back_past_the_retry_window_leaves_the_recovery_to_another_card_or_ends_it(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    one_card, two_cards = payment(), payment(tokens=(VISA, OTHER))
    for each in (one_card, two_cards):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    far = T0 + timedelta(days=300)

    answer = await operator.put(PATH, json=word(scheduled_at=format_ms(far)))

    assert answer.json()["recoveries_planned_again"] == 2
    assert await scheduler.loop.fire_due() == 2
    plan = scheduler.planned(two_cards)
    assert plan.token == OTHER and f"token {VISA} held back by the merchant past the retry window" in plan.reason
    ended = scheduler.recovery(one_card.payment_id)
    assert ended.status is RecoveryStatus.FAILED, ended.plan
    assert "the merchant holds back every card past the retry window" in " ".join(n.reason for n in ended.history)

    # The attempt the word sent to the other card is marked with it (not the other card's reservation: its own word
    # did not move it), and the held card's budget notes the recovery.
    assert (plan.held_until, plan.held_card) == (far, VISA)
    assert plan_from(describe_plan(plan)) == plan and describe_plan(plan)["held_card"] == VISA
    [reserved] = scheduler.card_budgets.of("merchant_test", OTHER).reservations
    assert reserved.held_until is None
    assert set(scheduler.card_budgets.of("merchant_test", VISA).held_off) == {one_card.payment_id, two_cards.payment_id}

    # Lifted: the recovery that ran out of retries under the word is asked again and reopens on the card; the one it
    # sent to the other card plans again and tries the held card first, as it would have without the word.
    lifted = (await operator.put(PATH, json=word(scheduled_at=format_ms(T0)))).json()

    assert lifted["recoveries_planned_again"] == 2, lifted
    assert scheduler.card_budgets.of("merchant_test", VISA).held_off == ()
    assert await scheduler.loop.fire_due() == 2
    reopened = scheduler.recovery(one_card.payment_id)
    assert reopened.status is RecoveryStatus.SCHEDULED and reopened.business_status is None
    assert scheduler.planned(one_card).token == VISA and scheduler.planned(one_card).planned_at < far
    assert [n.what for n in reopened.history][-2:] == ["reopened", "attempt_planned"]
    back = scheduler.planned(two_cards)
    assert (back.token, back.held_until, back.held_card) == (VISA, None, None), back
    assert scheduler.recovery(two_cards.payment_id).history[-2].reason == (
        f"the merchant's hold on card {VISA} until {far.isoformat()} lifted"
    )
    # The other card's slot is given back.
    assert scheduler.card_budgets.of("merchant_test", OTHER).usage(T0).planned == 0


async def test_smart_sent_to_the_other_card_by_the_word_comes_back_when_it_is_lifted(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    """Smart tries the card with the best slot (here the customer's other card, with no decline yet): the word moves
    that card's slot past the first card's, so the attempt goes to the first card, marked with the word. Moved
    sooner but still past the first card's slot, the recovery plans again and stays there, marked with the new
    time; lifted, the held card's slot is the best again and the attempt goes back to it."""
    base = payment(tokens=(VISA, OTHER), algorithm=RetryAlgorithm.SMART)
    # The customer's other card may be tried at once (smart's switch threshold: the billing system's failure on the
    # first card is its one retry).
    two_cards = base.model_copy(update={"retry": base.retry.model_copy(update={"switch_retry_threshold": 1})})
    await scheduler.send("scheduler.recovery-scheduled", scheduled(two_cards))
    free = scheduler.planned(two_cards)
    assert free.token == OTHER and free.held_card is None, free
    hold = T0 + timedelta(days=20)

    await operator.put(PATH, json=word(OTHER, scheduled_at=format_ms(hold)))
    assert await scheduler.loop.fire_due() == 1

    sent = scheduler.planned(two_cards)
    assert (sent.token, sent.held_until, sent.held_card) == (VISA, hold, OTHER), sent
    assert sent.planned_at < hold
    assert scheduler.card_budgets.of("merchant_test", OTHER).held_off == (two_cards.payment_id,)

    later = T0 + timedelta(days=2)
    moved = (await operator.put(PATH, json=word(OTHER, scheduled_at=format_ms(later)))).json()
    assert moved["recoveries_planned_again"] == 1, moved
    assert await scheduler.loop.fire_due() == 1
    still = scheduler.planned(two_cards)
    assert (still.token, still.held_until, still.held_card) == (VISA, later, OTHER), still
    assert scheduler.recovery(two_cards.payment_id).history[-2].reason == (
        f"the merchant's hold on card {OTHER} until {hold.isoformat()} moved to {later.isoformat()}"
    )

    lifted = (await operator.put(PATH, json=word(OTHER, scheduled_at=format_ms(T0)))).json()
    assert lifted["recoveries_planned_again"] == 1, lifted
    assert await scheduler.loop.fire_due() == 1
    back = scheduler.planned(two_cards)
    assert (back.token, back.held_until, back.held_card) == (OTHER, None, None), back
    assert scheduler.recovery(two_cards.payment_id).history[-2].reason == (
        f"the merchant's hold on card {OTHER} until {later.isoformat()} lifted"
    )


async def test_a_recovery_that_ran_out_of_retries_for_its_own_reasons_stays_ended_when_asked_again(
    scheduler: Scheduler,
) -> None:
    """Asked again (a re-plan reaching an ended recovery), one whose ladder is used up finds nothing to plan: it
    stays failed, and nothing is written."""
    base = payment()
    one_step = base.model_copy(update={"retry": base.retry.model_copy(update={"ladder_seconds": (60,)})})
    await scheduler.send("scheduler.recovery-scheduled", scheduled(one_step))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(one_step))
    ended = scheduler.recovery(one_step.payment_id)
    assert ended.status is RecoveryStatus.FAILED and ended.business_status == "FAILED_DUE_TO_RETRIES_EXHAUSTED"

    change = ended.replanned(replace(planning(T0 + timedelta(days=1)), card_budgets={}))

    assert change.recovery is ended and not change.changed and change.timers == ()
