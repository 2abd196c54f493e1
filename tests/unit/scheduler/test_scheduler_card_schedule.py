"""The merchant's word on when a card may next be tried (`scheduled_at` of
`PUT /v2/recovery/data-backfill/update-token`, Hyperswitch's time for the token's next try), through the scheduler's
internal endpoint on in-memory repositories: none of the merchant's recoveries tries the card before it (those
planned sooner plan again at once, and the reason says why), an operator's resume neither; a card held back past a
recovery's retry window leaves it to the customer's other card, or ends it; a time now or past lifts the word for
the plans made from then on."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx

from recovery_contracts.timestamps import format_ms
from recovery_scheduler.domain.card_budgets import CardBudget
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0
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

    # Lifted (a time now): the attempts planned stand; a recovery that plans from now tries the card sooner.
    lifted = (await operator.put(PATH, json=word(scheduled_at=format_ms(T0)))).json()
    assert (lifted["updated"], lifted["recoveries_planned_again"]) == (True, 0), lifted
    assert "no longer held back" in lifted["message"]
    assert scheduler.planned(one_card).planned_at >= HOLD
    fresh = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(fresh))
    assert scheduler.planned(fresh).planned_at < HOLD
    status = (await operator.get(PATH, params={"payment_processor_token": VISA})).json()
    assert status["scheduled_at"] is None


def test_an_operators_resume_waits_for_the_merchants_time_too() -> None:
    failed = replace(Recovery.start(payment(), planning()).recovery, status=RecoveryStatus.FAILED)
    held = CardBudget("merchant_test", VISA, 1, not_before=HOLD)

    change = failed.resumed(T0 + timedelta(hours=1), replace(planning(), card_budgets={VISA: held}))

    planned = change.recovery.history[-1]
    assert planned.what == "attempt_planned" and planned.details["planned_at"] == HOLD
    assert f"not before {HOLD.isoformat()}, as the merchant asked for card {VISA}" in planned.reason


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
