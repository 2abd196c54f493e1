"""The process-tracker endpoints intake forwards to: a recovery's view, and an operator's resume."""

from __future__ import annotations

from datetime import timedelta

import httpx

from recovery_contracts.envelope import MessageType
from recovery_contracts.recovery import PriorRetries
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER
from support.payments import scheduled

from .builders import T0, attempt_failed, payment, payment_succeeded, record_back_timer, recovery_updated
from .fakes import Scheduler

RESUME = {
    "revenue_recovery_task": "EXECUTE_WORKFLOW",
    "schedule_time": "2026-01-16T09:00:00Z",
    "status": "pending",
    "business_status": "Pending",
}


async def test_the_view_shows_the_planned_attempt_and_the_timeline_to_its_merchant_only(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "insufficient_funds"))

    answer = await operator.get(f"/internal/recoveries/merchant_test/{recovery.payment_id}")

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["id"] == f"PASSIVE_RECOVERY_WORKFLOW_EXECUTE_WORKFLOW_{recovery.payment_id}"
    assert (view["status"], view["business_status"], view["recovery_status"]) == ("pending", "Pending", "scheduled")
    assert view["plan"]["kind"] == "attempt" and view["plan"]["attempt_number"] == 2
    assert view["schedule_time_for_payment"] == view["plan"]["due_at"]
    [attempt] = view["attempts"]
    assert (attempt["decline_code"], attempt["decline_class"], attempt["at"]) == (
        "insufficient_funds",
        "later",
        "2026-01-15T12:05:00.000Z",
    )
    assert [e["what"] for e in view["timeline"]] == ["attempt_planned", "attempt_failed", "attempt_planned"]
    other = await operator.get(
        f"/internal/recoveries/merchant_test/{recovery.payment_id}", headers={MERCHANT_HEADER: "merchant_other"}
    )
    assert other.status_code == 404


async def test_an_operator_resumes_a_failed_recovery_and_is_told_why_not_otherwise(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    recovery = payment(tokens=("pm_card_visa",), retry=payment().retry.model_copy(update={"max_retry_count": 2}))
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    resume = f"/internal/recoveries/merchant_test/{recovery.payment_id}/resume"
    refused = await operator.post(resume, json=RESUME)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "only a failed recovery can be resumed; this one is scheduled"

    # max_retry_count 2: the billing system's attempt and this one: retries exhausted.
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "insufficient_funds"))
    assert scheduler.recovery(recovery.payment_id).business_status == "FAILED_DUE_TO_RETRIES_EXHAUSTED"
    answer = await operator.post(resume, json=RESUME)

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert (view["recovery_status"], view["plan"]["attempt_number"]) == ("scheduled", 2)
    assert view["plan"]["planned_at"] == "2026-01-16T09:00:00.000Z"
    assert view["timeline"][-2]["what"] == "resume_requested"
    assert scheduler.timers.stored[f"execute:{recovery.payment_id}:2"].timer.due_at == T0 + timedelta(hours=21)


async def test_the_view_shows_the_payments_reservations_taken_kept_and_given_back(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    recovery = payment()
    path = f"/internal/recoveries/merchant_test/{recovery.payment_id}"

    async def reservations() -> list[tuple[int, str]]:
        [token] = (await operator.get(path)).json()["tokens"]
        assert token["other_recoveries_reservations"] == 0
        return [(r["attempt_number"], r["outcome"]) for r in token["budget_reservations"]]

    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    assert await reservations() == [(0, "declined"), (1, "planned")]  # 0: the billing system's try
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "insufficient_funds"))
    # The attempt made keeps its slot (it was an authorization); the next one takes its own.
    assert await reservations() == [(0, "declined"), (1, "declined"), (2, "planned")]
    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "cancel_invoice", 2))
    # Cancelled: the planned attempt will not run, so its slot is given back.
    assert await reservations() == [(0, "declined"), (1, "declined")]


async def test_a_resume_that_names_the_task_only_plans_the_attempt_now(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    """Hyperswitch's retrigger body as juspay/hyperswitch#13572 left it: no `schedule_time`, `status` or
    `business_status`; the attempt is planned now (the billing system's failure lies two days back, outside every
    network wait)."""
    base = payment(tokens=("pm_card_visa",), transaction_created_at=T0 - timedelta(days=2))
    recovery = base.model_copy(update={"retry": base.retry.model_copy(update={"max_retry_count": 2})})
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.attempt-failed", attempt_failed(recovery, 1, "insufficient_funds"))
    resume = f"/internal/recoveries/merchant_test/{recovery.payment_id}/resume"

    answer = await operator.post(resume, json={"revenue_recovery_task": "EXECUTE_WORKFLOW"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["plan"]["attempt_number"] == 2
    assert scheduler.timers.stored[f"execute:{recovery.payment_id}:2"].timer.due_at == scheduler.clock.now()


async def test_the_view_shows_the_cards_retries_before_this_system(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    recovery = payment()
    prior = (PriorRetries(at=T0 - timedelta(days=2), count=4), PriorRetries(at=T0 - timedelta(hours=3), count=1))
    card = recovery.tokens[0].model_copy(update={"prior_retries": prior})
    recovery = recovery.model_copy(update={"tokens": (card,)})
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))

    [token] = (await operator.get(f"/internal/recoveries/merchant_test/{recovery.payment_id}")).json()["tokens"]

    assert token["prior_retries"] == [
        {"at": (T0 - timedelta(days=2)).isoformat().replace("+00:00", ".000Z"), "count": 4},
        {"at": (T0 - timedelta(hours=3)).isoformat().replace("+00:00", ".000Z"), "count": 1},
    ]


async def test_a_profile_level_call_reads_another_profiles_recovery_as_one_that_does_not_exist(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    mine, theirs = payment(profile_id="pro_a"), payment(profile_id="pro_b")
    for recovery in (mine, theirs):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    as_a = {PROFILE_HEADER: "pro_a"}

    def path(payment_id: str, action: str = "") -> str:
        return f"/internal/recoveries/merchant_test/{payment_id}{action}"

    own = await operator.get(path(mine.payment_id), headers=as_a)
    other = await operator.get(path(theirs.payment_id), headers=as_a)
    unknown = await operator.get(path("12345_pay_unknown"), headers=as_a)
    resume_other = await operator.post(path(theirs.payment_id, "/resume"), json=RESUME, headers=as_a)
    resume_unknown = await operator.post(path("12345_pay_unknown", "/resume"), json=RESUME, headers=as_a)
    merchant_level = [await operator.get(path(p.payment_id)) for p in (mine, theirs)]

    assert own.status_code == 200 and own.json()["payment_id"] == mine.payment_id
    assert (other.status_code, other.json()) == (unknown.status_code, unknown.json())
    assert other.status_code == 404 and other.json()["error"]["code"] == "HE_02"
    assert (resume_other.status_code, resume_other.json()) == (resume_unknown.status_code, resume_unknown.json())
    # Not the refusal a scheduled recovery of the caller's gets (400): the recovery is not found.
    assert resume_other.status_code == 404
    # Merchant-level (no profile): every profile's recovery.
    assert [answer.status_code for answer in merchant_level] == [200, 200]


async def test_a_record_back_try_on_a_timer_is_the_psync_task_pending_then_finished(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    """Hyperswitch's PSYNC task settles an attempt and records a success back: a recovered payment whose record back
    is to be tried again (the executor's timer) shows PSYNC pending at that time; once it fired, finished."""
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.payment-succeeded", payment_succeeded(recovery))
    path = f"/internal/recoveries/merchant_test/{recovery.payment_id}"
    done = (await operator.get(path)).json()
    assert (done["name"], done["status"], done["schedule_time_for_psync"]) == ("EXECUTE_WORKFLOW", "finish", None)
    due = T0 + timedelta(hours=1)
    request = record_back_timer(recovery.payment_id, due)
    await scheduler.send("scheduler.timer-schedule", request)

    pending = (await operator.get(path)).json()

    assert (pending["name"], pending["status"], pending["business_status"]) == (
        "PSYNC_WORKFLOW",
        "pending",
        "COMPLETED_EXECUTE_TASK_TO_TRIGGER_PSYNC",
    )
    assert pending["schedule_time_for_psync"] == "2026-01-15T13:00:00.000Z"
    assert pending["recovery_status"] == "succeeded"
    scheduler.clock.advance(timedelta(hours=2))
    await scheduler.loop.fire_due()
    assert [sent.payload.attempt for sent in scheduler.published(MessageType.RECORD_BACK)] == [2]
    assert (await operator.get(path)).json()["status"] == "finish"
