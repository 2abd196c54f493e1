"""The merchant's word on a card (`PUT /v2/recovery/data-backfill/update-token`, forwarded to the scheduler's
`/internal/cards/{merchant}/token-status`), through the internal endpoint on in-memory repositories: a card the
merchant marks hard-declined is charged by none of its recoveries (those with an attempt planned on it plan again at
once); clearing it forgets the hard declines recorded on it, but a recovery's own; bad requests say what is wrong
and change nothing.

The payments' billing-system failure lies 40 days back, outside every window: only this system's attempts count.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY

from recovery_runtime.internal_api import MERCHANT_HEADER
from recovery_scheduler.domain.card_budgets import BUDGET_LOOKBACK, MERCHANT_MARK, CardBudget, HardDecline
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0, attempt_failed
from .builders import merchant_payment as payment
from .fakes import Scheduler

VISA = "pm_card_visa"
OTHER = "pm_card_mastercard"
PATH = "/internal/cards/merchant_test/token-status"


def word(token: str = VISA, **fields: Any) -> dict[str, Any]:
    return {"connector_customer_id": "cus_1", "payment_processor_token": token, **fields}


def updates(kind: str) -> float:
    return REGISTRY.get_sample_value("recovery_token_status_updates_total", {"update": kind}) or 0.0


async def test_a_card_the_merchant_marks_is_charged_by_none_of_its_recoveries(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    waiting, two_cards = payment(), payment(tokens=(VISA, OTHER))
    elsewhere = payment(merchant_id="merchant_other")
    for each in (waiting, two_cards, elsewhere):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(each))
    waiting_timer = scheduler.planned(waiting).timer_id
    marked_before = updates("marked")

    answer = await operator.put(PATH, json=word(is_hard_decline=True, error_code="lost_card"))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["updated"], body["hard_declined"], body["recoveries_planned_again"]) == (True, True, 2)
    assert "marked hard-declined" in body["message"]
    assert scheduler.card_budgets.of("merchant_test", VISA).hard_declines == (
        HardDecline(MERCHANT_MARK, 0, T0, "error_code=lost_card"),
    )
    assert updates("marked") == marked_before + 1
    assert await scheduler.loop.fire_due() == 2
    # Planned on the card and no other: ends as hard-declined, its timer cancelled; the reason names the merchant.
    stopped = scheduler.recovery(waiting.payment_id)
    assert stopped.status is RecoveryStatus.FAILED, stopped.plan
    assert scheduler.timers.stored[waiting_timer].status.value == "cancelled"
    notes = " ".join(n.reason for n in stopped.history)
    assert "hard-declined marked by the merchant (error_code=lost_card)" in notes
    assert scheduler.planned(two_cards).token == OTHER
    view = (await operator.get(f"/internal/recoveries/merchant_test/{two_cards.payment_id}")).json()
    assert [(t["hard_declined"], t["hard_declined_in"], t["hard_declined_by_merchant"]) for t in view["tokens"]] == [
        (True, None, True),
        (False, None, False),
    ]
    # Another merchant's card of the same id is not touched; a later recovery of this merchant never plans on it.
    assert scheduler.planned(elsewhere).token == VISA
    later = payment(tokens=(VISA, OTHER))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(later))
    assert scheduler.planned(later).token == OTHER

    # Said again: nothing changes, and the answer says so.
    again = (await operator.put(PATH, json=word(is_hard_decline=True))).json()
    assert (again["updated"], again["hard_declined"], again["recoveries_planned_again"]) == (False, True, 0)
    assert "already" in again["message"]
    assert len(scheduler.card_budgets.of("merchant_test", VISA).hard_declines) == 1


async def test_a_cleared_card_may_be_charged_again_but_by_a_recovery_whose_own_attempt_met_the_decline(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    finder = payment(tokens=(VISA,))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(finder))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(finder, 1, "stolen_card"))
    assert (await operator.put(PATH, json=word(is_hard_decline=True))).json()["updated"] is True
    assert len(scheduler.card_budgets.of("merchant_test", VISA).hard_declines) == 2
    cleared_before = updates("cleared")

    answer = await operator.put(PATH, json=word(is_hard_decline=False))

    body = answer.json()
    assert (body["updated"], body["hard_declined"], body["recoveries_planned_again"]) == (True, False, 0), body
    assert "2 hard decline(s) forgotten" in body["message"]
    assert scheduler.card_budgets.of("merchant_test", VISA).hard_declines == ()
    assert updates("cleared") == cleared_before + 1
    # A recovery of the merchant that starts now plans on the card again ...
    later = payment(tokens=(VISA,))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(later))
    assert scheduler.planned(later).token == VISA
    assert scheduler.card_budgets.of("merchant_test", VISA).hard_declines == ()
    # ... the one whose own attempt met the decline does not: the issuer said so for its invoice.
    resume = {
        "revenue_recovery_task": "EXECUTE_WORKFLOW",
        "schedule_time": "2026-01-16T09:00:00Z",
        "status": "pending",
        "business_status": "Pending",
    }
    refused = await operator.post(f"/internal/recoveries/merchant_test/{finder.payment_id}/resume", json=resume)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("every token of this payment is hard-declined")

    # Cleared again: nothing is recorded, nothing changes.
    again = (await operator.put(PATH, json=word(is_hard_decline=False))).json()
    assert (again["updated"], again["hard_declined"]) == (False, False)
    assert again["message"] == f"card {VISA} has no hard decline recorded"


async def test_a_word_that_cannot_be_applied_is_refused_with_the_reason_and_changes_nothing(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    refusals = [
        (
            word(is_hard_decline=True, scheduled_at="2026-01-16T09:00:00Z"),
            422,
            "IR_06",
            "scheduled_at goes with a card that may be charged",
        ),
        (word(scheduled_at=(T0 + timedelta(days=366)).isoformat()), 422, "IR_06", "at most 365 days ahead"),
        (word(), 400, "IR_04", "Missing required param: is_hard_decline"),
        (word(is_hard_decline=False, error_code="lost_card"), 422, "IR_06", "error_code goes with is_hard_decline"),
    ]
    for body, status, code, said in refusals:
        answer = await operator.put(PATH, json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["code"] == code
        assert said in answer.json()["error"]["message"]
    # The body's own shape (an unknown field, an empty token) is FastAPI's validation, which intake turns into IR_06.
    assert (await operator.put(PATH, json=word(is_hard_decline=True, colour="red"))).status_code == 422
    assert (await operator.put(PATH, json=word(token="", is_hard_decline=True))).status_code == 422
    assert (await operator.put(PATH, json=word(scheduled_at="next tuesday"))).status_code == 422
    # Another merchant's path reads as one that does not exist.
    other = await operator.put("/internal/cards/merchant_other/token-status", json=word(is_hard_decline=True))
    assert other.status_code == 404
    assert scheduler.card_budgets.stored == {}
    other_merchant = await operator.put(
        "/internal/cards/merchant_other/token-status",
        json=word(is_hard_decline=True),
        headers={MERCHANT_HEADER: "merchant_other"},
    )
    assert other_merchant.json()["updated"] is True
    assert set(scheduler.card_budgets.stored) == {("merchant_other", VISA)}


def test_the_merchants_mark_holds_a_year_where_a_recoverys_decline_holds_the_network_window() -> None:
    met = HardDecline("12345_pay_a", 1, T0, "decline_code=stolen_card")
    mark = HardDecline(MERCHANT_MARK, 0, T0, "no code given")
    budget = CardBudget("merchant_test", VISA, hard_declines=(met, mark))

    assert (met.where, mark.where) == ("in payment 12345_pay_a", "marked by the merchant")
    assert (met.lasts_until, mark.lasts_until) == (T0 + BUDGET_LOOKBACK, T0 + timedelta(days=365))
    assert budget.expires_at == T0 + timedelta(days=365)
    # A recovery rewriting the budget 40 days on keeps the mark and drops the recovery's decline.
    rewritten = budget.with_recovery(_recovery_without_attempts(), T0 + timedelta(days=40))
    assert rewritten.hard_declines == (mark,)
    assert budget.hard_declined_elsewhere("12345_pay_b") == met
    assert CardBudget("merchant_test", VISA, hard_declines=(mark,)).hard_declined_elsewhere("12345_pay_b") == mark


def _recovery_without_attempts() -> Any:
    from recovery_scheduler.domain.model import Algorithm
    from recovery_scheduler.domain.recovery import Recovery

    return Recovery(
        payment=payment(tokens=(VISA,)),
        algorithm=Algorithm.CASCADING,
        status=RecoveryStatus.SCHEDULED,
        version=1,
        created_at=T0,
        updated_at=T0,
    )


async def test_a_cards_status_shows_its_hard_declines_and_the_merchants_use_of_it(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    finder, waiting = payment(tokens=(VISA,)), payment(tokens=(VISA,))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(finder))
    scheduler.clock.advance(timedelta(minutes=6))  # past the finder's attempt (made at T0 + 5 min)
    await scheduler.send("scheduler.recovery-scheduled", scheduled(waiting))  # its attempt planned later
    await scheduler.send("scheduler.attempt-failed", attempt_failed(finder, 1, "stolen_card"))
    marked = await operator.put(PATH, json=word(is_hard_decline=True, error_code="lost_card"))
    assert marked.json()["updated"] is True
    made_at = scheduler.recovery(finder.payment_id).attempts[0].at

    answer = await operator.get(PATH, params={"payment_processor_token": VISA})

    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert (status["payment_processor_token"], status["hard_declined"]) == (VISA, True)
    assert [
        (d["payment_id"], d["marked_by_merchant"], d["attempt_number"], d["rule"]) for d in status["hard_declines"]
    ] == [(finder.payment_id, False, 1, "decline_code=stolen_card"), (None, True, 0, "error_code=lost_card")]
    assert status["hard_declines"][0]["counts_until"].startswith((made_at + BUDGET_LOOKBACK).date().isoformat())
    # The finder's attempt, made and declined; the waiting recovery's, planned until its re-plan fires.
    assert (status["attempts_last_30_days"], status["declined_last_30_days"], status["planned_attempts"]) == (1, 1, 1)
    await scheduler.loop.fire_due()
    assert scheduler.recovery(waiting.payment_id).status is RecoveryStatus.FAILED
    after = (await operator.get(PATH, params={"payment_processor_token": VISA})).json()
    assert (after["attempts_last_30_days"], after["planned_attempts"]) == (1, 0)
    # A card nothing is recorded on; another merchant's view of the same id.
    fresh = (await operator.get(PATH, params={"payment_processor_token": OTHER})).json()
    assert (fresh["hard_declined"], fresh["hard_declines"], fresh["attempts_last_30_days"]) == (False, [], 0)
    other = await operator.get(
        "/internal/cards/merchant_other/token-status",
        params={"payment_processor_token": VISA},
        headers={MERCHANT_HEADER: "merchant_other"},
    )
    assert other.json()["hard_declines"] == []
    assert (await operator.get(PATH)).status_code == 422  # the token is required
