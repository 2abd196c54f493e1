"""Starting an abandoned refund record again (a dispute lost on a recovered payment, recorded at the billing system
as a refund): the process-tracker resume's `dispute_id` (extension) and the Payment page's "Start the refund record
again", both sent to the executor's restart with `?dispute_id=` (scripted executor and scheduler on loopback here;
the whole path runs in tests/e2e/test_billing_chargebee.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recovery_intake.console import payment_view

from .fakes import API_KEY, MERCHANT, http_client, intake
from .test_console_record_back import PAYMENT, ScriptedOwner
from .test_console_routes import session_token, signed_in

DISPUTE = "dsp_" + "a" * 32
RESUME = f"/v2/process-trackers/revenue-recovery-workflow/{PAYMENT}/resume"
PSYNC = {
    "revenue_recovery_task": "PSYNC_WORKFLOW",
    "schedule_time": "2026-12-05T12:00:00Z",
    "status": "finish",
    "business_status": "COMPLETED_PSYNC_TASK",
}


@pytest.fixture
def executor() -> Iterator[ScriptedOwner]:
    restart = ScriptedOwner("/internal/record-backs/{merchant}/{payment}/restart", "POST", {"status": "retrying"})
    with restart.serving() as scripted:
        yield scripted


@pytest.fixture
def scheduler() -> Iterator[ScriptedOwner]:
    workflow = ScriptedOwner("/internal/recoveries/{merchant}/{payment}", "GET", {"id": f"wf_{PAYMENT}"})
    with workflow.serving() as scripted:
        yield scripted


def headers() -> dict[str, str]:
    return {"api-key": API_KEY}


async def test_the_resume_with_a_dispute_id_restarts_that_refund_record_and_answers_the_workflow(
    executor: ScriptedOwner, scheduler: ScriptedOwner
) -> None:
    svc = intake(executor_internal_url=executor.base, scheduler_internal_url=scheduler.base)
    async with http_client(svc) as client:
        answer = await client.post(RESUME, params={"dispute_id": DISPUTE}, json=PSYNC, headers=headers())

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": f"wf_{PAYMENT}"}
    [(path, _, body)] = executor.received
    assert path == f"/internal/record-backs/{MERCHANT}/{PAYMENT}/restart" and body == PSYNC
    assert executor.queries == [{"dispute_id": DISPUTE}]


async def test_the_executors_answer_for_no_such_refund_record_reaches_the_merchant(
    executor: ScriptedOwner, scheduler: ScriptedOwner
) -> None:
    missing = (
        "no refund record of that dispute for this payment (no such dispute lost on it, or nothing to record it at)"
    )
    executor.answers.append((400, {"error": {"type": "invalid_request", "message": missing, "code": "IR_16"}}))
    svc = intake(executor_internal_url=executor.base, scheduler_internal_url=scheduler.base)
    async with http_client(svc) as client:
        answer = await client.post(RESUME, params={"dispute_id": DISPUTE}, json=PSYNC, headers=headers())

    assert answer.status_code == 400 and answer.json()["error"]["message"] == missing
    assert scheduler.received == []  # no workflow answered for a restart that did not happen


async def test_a_dispute_id_with_another_task_or_not_an_id_is_refused_and_nothing_is_called(
    executor: ScriptedOwner, scheduler: ScriptedOwner
) -> None:
    svc = intake(executor_internal_url=executor.base, scheduler_internal_url=scheduler.base)
    execute = {**PSYNC, "revenue_recovery_task": "EXECUTE_WORKFLOW", "status": "pending", "business_status": "Pending"}
    async with http_client(svc) as client:
        other_task = await client.post(RESUME, params={"dispute_id": DISPUTE}, json=execute, headers=headers())
        not_an_id = await client.post(RESUME, params={"dispute_id": "../x"}, json=PSYNC, headers=headers())
        too_long = await client.post(RESUME, params={"dispute_id": "d" * 65}, json=PSYNC, headers=headers())

    assert other_task.status_code == 400
    assert other_task.json()["error"]["message"] == (
        "dispute_id goes with revenue_recovery_task PSYNC_WORKFLOW only (a refund record restarted)"
    )
    assert not_an_id.status_code == 400 and "no refund record of dispute '../x'" in not_an_id.text
    assert too_long.status_code in (400, 422) and "dispute_id" in too_long.text
    assert executor.received == [] and scheduler.received == []


async def test_a_resume_naming_the_task_only_is_forwarded_and_a_retry_count_is_refused(
    executor: ScriptedOwner, scheduler: ScriptedOwner
) -> None:
    """Hyperswitch's retrigger body as juspay/hyperswitch#13572 left it: `schedule_time`, `status` and
    `business_status` may be left out (the owner starts the task now); its `retry_count` override is refused here."""
    svc = intake(executor_internal_url=executor.base, scheduler_internal_url=scheduler.base)
    task_only = {"revenue_recovery_task": "PSYNC_WORKFLOW"}
    async with http_client(svc) as client:
        forwarded = await client.post(RESUME, json=task_only, headers=headers())
        counted = await client.post(RESUME, json={**PSYNC, "retry_count": 3}, headers=headers())

    assert forwarded.status_code == 200, forwarded.text
    assert [body for _, _, body in executor.received] == [task_only]
    assert counted.status_code == 400 and counted.json()["error"]["code"] == "IR_19"
    assert counted.json()["error"]["message"].startswith("retry_count cannot be set here")
    assert len(executor.received) == 1  # the refused one reached no owner


async def test_the_payment_page_button_restarts_the_refund_record_of_its_dispute(executor: ScriptedOwner) -> None:
    svc = intake(executor_internal_url=executor.base)
    path = f"/console/payments/{PAYMENT}/disputes/{DISPUTE}/refund-record/restart"
    async with signed_in(svc) as client:
        answer = await client.post(path, data={"csrf_token": session_token(svc, client)})
        bad = await client.post(
            f"/console/payments/{PAYMENT}/disputes/not%20an%20id/refund-record/restart",
            data={"csrf_token": session_token(svc, client)},
        )

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/payments/{PAYMENT}?done=refund-record"
    [(received_path, _, body)] = executor.received
    assert received_path == f"/internal/record-backs/{MERCHANT}/{PAYMENT}/restart"
    assert body["revenue_recovery_task"] == "PSYNC_WORKFLOW" and executor.queries == [{"dispute_id": DISPUTE}]
    assert bad.status_code == 404 and "No refund record" in bad.text


def test_the_payment_page_shows_each_lost_dispute_with_its_refund_records_tries() -> None:
    timeline = {
        "payment_id": PAYMENT,
        "disputes": [
            {
                "dispute_id": DISPUTE,
                "connector": "stripe",
                "connector_dispute_id": "dp_1",
                "amount": 2250,
                "currency": "USD",
                "reason": "fraudulent",
                "lost_at": "2026-12-04T09:00:00Z",
                "refund_record": [
                    {"attempt": 2, "at": "2026-12-04T10:00:00Z", "billing_connector": "chargebee",
                     "state": "abandoned", "status_code": 500},
                    {"attempt": 1, "at": "2026-12-04T09:00:01Z", "billing_connector": "chargebee",
                     "state": "retrying", "error": "ConnectError: refused"},
                ],
            },
        ],
    }  # fmt: skip

    [shown] = payment_view.payment_page(timeline, None, []).disputes

    assert (shown.dispute_id, shown.connector_dispute_id, shown.amount, shown.reason) == (
        DISPUTE, "dp_1", "USD 22.50", "fraudulent",
    )  # fmt: skip
    assert shown.lost_at == "2026-12-04 09:00:00 UTC"
    assert [(t.attempt, t.answer, t.state) for t in shown.refund_record] == [
        (1, "ConnectError: refused", "retrying"),
        (2, "HTTP 500", "abandoned"),
    ]
    assert payment_view.payment_page({"payment_id": PAYMENT}, None, []).disputes == []


async def test_an_unsigned_visitor_cannot_restart_a_refund_record(executor: ScriptedOwner) -> None:
    svc = intake(executor_internal_url=executor.base)
    async with http_client(svc) as client:
        answer = await client.post(
            f"/console/payments/{PAYMENT}/disputes/{DISPUTE}/refund-record/restart", data={"csrf_token": "x"}
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert executor.received == []
