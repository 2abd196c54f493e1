"""Record back: the billing connector hears of a successful retry once it answers 2xx, tried on durable timers."""

from __future__ import annotations

import json
from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_executor.domain.follow_up import RECORD_BACK_MAX_TRIES
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_runtime.testing import consumed
from support.payments import record_back

from .fakes import Executor

QUEUE = "executor.record-back"
REFUSED = RecordBackAnswer(accepted=False, status_code=503)


async def test_an_accepted_record_back_is_recorded_once(executor: Executor) -> None:
    request = record_back("12345_pay_1")

    duplicates = consumed(QUEUE, "duplicate")
    await executor.send(QUEUE, request)
    await executor.send(QUEUE, request)  # redelivered
    await executor.send(QUEUE, request.model_copy(update={"message_id": "a-timer-fired-twice"}))
    assert consumed(QUEUE, "duplicate") - duplicates == 2  # acknowledged as duplicates, not applied again

    [(url, body, key)] = executor.billing.calls
    assert (url, key) == ("https://billing.example/record-back", "record-back:12345_pay_1")
    assert body["attempt_status"] == "charged" and body["connector_transaction_id"] == "pi_approved"
    progress = executor.record_backs.progress["12345_pay_1"]
    assert (progress.status, progress.attempts) == (RecordBackStatus.ACCEPTED, 1)
    # One try, one event for the read side's timeline, with the payment's merchant and profile.
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.merchant_id, updated.profile_id, updated.correlation_id) == (
        "merchant_test",
        "pro_test",
        "12345_pay_1",
    )
    event = updated.payload
    assert (event.payment_id, event.billing_connector, event.attempt, event.state, event.status_code) == (
        "12345_pay_1", "custombilling", 1, "accepted", 200,
    )  # fmt: skip
    assert event.at == executor.clock.now() and event.merchant_id == "merchant_test"
    assert len(executor.publisher.published) == 1


async def test_a_refused_record_back_is_tried_again_on_a_timer(executor: Executor) -> None:
    executor.billing.answers.append(REFUSED)
    request = record_back("12345_pay_1")

    await executor.send(QUEUE, request)

    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert (timer.payload.timer_id, timer.payload.kind) == ("record-back:12345_pay_1:2", "record_back")
    assert timer.payload.due_at == executor.clock.now() + timedelta(minutes=1)
    assert timer.payload.message["payload"]["attempt"] == 2
    assert timer.payload.message["causation_id"] == request.message_id
    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.RETRYING
    [tried] = executor.record_backs.tries["12345_pay_1"]
    assert (tried.attempt, tried.status_code) == (1, 503)
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.attempt, updated.payload.state, updated.payload.status_code) == (1, "retrying", 503)


async def test_a_duplicate_of_a_refused_try_records_it_once(executor: Executor) -> None:
    executor.billing.answers.extend([REFUSED, REFUSED])
    request = record_back("12345_pay_1")

    await executor.send(QUEUE, request)
    await executor.send(QUEUE, request)

    # Asked twice (the billing system de-duplicates by the idempotency key), recorded and re-timed once.
    assert len(executor.billing.calls) == 2
    assert len(executor.record_backs.tries["12345_pay_1"]) == 1
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1
    assert len(executor.published(MessageType.RECORD_BACK_UPDATED)) == 1


async def test_the_last_refused_try_gives_up_for_an_operator(executor: Executor) -> None:
    executor.billing.answers.append(REFUSED)

    await executor.send(QUEUE, record_back("12345_pay_1", attempt=RECORD_BACK_MAX_TRIES))

    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.ABANDONED
    assert executor.published(MessageType.SCHEDULE_TIMER) == []
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.attempt, updated.payload.state) == (RECORD_BACK_MAX_TRIES, "abandoned")


async def test_an_invalid_record_back_is_dead_lettered_with_the_reason(executor: Executor) -> None:
    request = record_back().model_dump(mode="json")
    del request["payload"]["url"]

    await executor.send(QUEUE, json.dumps(request).encode())

    [letter] = executor.publisher.dead_letters
    assert letter.queue == QUEUE and "payload.url: Field required" in letter.reason
    assert executor.billing.calls == []


async def test_a_destination_the_egress_policy_blocks_is_final_and_never_retried(executor: Executor) -> None:
    reason = "blocked: 10.0.0.1 is a private address (not in OUTBOUND_ALLOWED_CIDRS)"
    executor.billing.answers.append(RecordBackAnswer(accepted=False, error=reason, blocked=True))

    await executor.send(QUEUE, record_back("12345_pay_1"))

    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.BLOCKED
    [tried] = executor.record_backs.tries["12345_pay_1"]
    assert tried.error == reason
    assert executor.published(MessageType.SCHEDULE_TIMER) == []  # no timer: no later try could pass
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.state, updated.payload.error) == ("blocked", reason)


async def test_the_record_back_and_each_try_are_read_by_the_payments_merchant_only(executor: Executor) -> None:
    """The generic (`custombilling`) record back as the payment's timeline shows it: every try with its HTTP status
    or error and where the record back stood after it; another merchant, or no internal token, reads nothing."""
    executor.billing.answers.extend([REFUSED, RecordBackAnswer(accepted=False, error="ConnectError: refused")])
    first = record_back("12345_pay_1")
    await executor.send(QUEUE, first)
    for attempt in (2, 3):
        executor.clock.advance(timedelta(minutes=5))
        await executor.send(QUEUE, record_back("12345_pay_1", attempt=attempt))

    answer = await executor.record_back_of("12345_pay_1")

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert (view["payment_id"], view["billing_connector"], view["status"], view["tries"]) == (
        "12345_pay_1",
        "custombilling",
        "accepted",
        3,
    )
    assert [(a["attempt"], a["at"], a["status_code"], a["error"], a["outcome"]) for a in view["attempts"]] == [
        (1, "2026-01-15T12:00:00.000Z", 503, None, "retrying"),
        (2, "2026-01-15T12:05:00.000Z", None, "ConnectError: refused", "retrying"),
        (3, "2026-01-15T12:10:00.000Z", 200, None, "accepted"),
    ]
    assert (await executor.record_back_of("12345_pay_1", merchant_id="merchant_other")).status_code == 404
    assert (await executor.record_back_of("12345_pay_unknown")).status_code == 404
    assert (await executor.record_back_of("12345_pay_1", **{"x-internal-token": "not-the-token"})).status_code == 403


# ---- an operator starts an abandoned or blocked record back again (PSYNC resumed) --------------------------------


def psync_resume(executor: Executor, **changes: object) -> dict[str, object]:
    """The resume body intake forwards: PSYNC_WORKFLOW, due now unless `schedule_time` says later."""
    body: dict[str, object] = {
        "revenue_recovery_task": "PSYNC_WORKFLOW",
        "schedule_time": executor.clock.now().isoformat(),
        "status": "finish",
        "business_status": "COMPLETED_PSYNC_TASK",
    }
    return {**body, **changes}


async def abandon(executor: Executor, payment_id: str = "12345_pay_1") -> None:
    executor.billing.answers.append(REFUSED)
    await executor.send(QUEUE, record_back(payment_id, attempt=RECORD_BACK_MAX_TRIES))
    assert executor.record_backs.progress[payment_id].status is RecordBackStatus.ABANDONED
    executor.publisher.published.clear()


async def test_an_abandoned_record_back_restarts_with_a_new_round_of_tries_and_nothing_charged(
    executor: Executor,
) -> None:
    await abandon(executor)
    executor.clock.advance(timedelta(days=2))

    answer = await executor.restart_record_back("12345_pay_1", psync_resume(executor))

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["tries"]) == ("retrying", RECORD_BACK_MAX_TRIES)
    [first] = executor.published(MessageType.RECORD_BACK)  # sent now, no timer
    assert (first.payload.attempt, first.payload.round_start) == (RECORD_BACK_MAX_TRIES + 1,) * 2
    assert (first.merchant_id, first.profile_id, first.correlation_id) == ("merchant_test", "pro_test", "12345_pay_1")
    assert first.payload.body == record_back("12345_pay_1").payload.body  # the same record, the same key
    assert executor.connector.charges == [] and executor.connector.syncs == []

    # Its first try refused: the waits start over (a timer a minute later), not abandoned at once.
    executor.billing.answers.append(REFUSED)
    await executor.send(QUEUE, first)
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert timer.payload.due_at == executor.clock.now() + timedelta(minutes=1)
    assert timer.payload.message["payload"]["attempt"] == RECORD_BACK_MAX_TRIES + 2
    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.RETRYING
    # Its next one (the timer's message) accepted, under the same idempotency key as every try before.
    await executor.send(QUEUE, json.dumps(timer.payload.message).encode())
    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.ACCEPTED
    assert {key for _, _, key in executor.billing.calls} == {"record-back:12345_pay_1"}


async def test_a_restart_due_later_is_a_timer(executor: Executor) -> None:
    await abandon(executor)
    later = executor.clock.now() + timedelta(hours=3)

    answer = await executor.restart_record_back("12345_pay_1", psync_resume(executor, schedule_time=later.isoformat()))

    assert answer.status_code == 200, answer.text
    assert executor.published(MessageType.RECORD_BACK) == []
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    first = RECORD_BACK_MAX_TRIES + 1
    assert (timer.payload.timer_id, timer.payload.kind) == (f"record-back:12345_pay_1:{first}", "record_back")
    assert timer.payload.due_at == later  # TIME_SCALE 1 in these tests
    assert timer.payload.message["payload"]["round_start"] == first


async def test_a_blocked_record_back_restarts_once_the_destination_is_allowed(executor: Executor) -> None:
    blocked = RecordBackAnswer(accepted=False, error="blocked: 10.0.0.1 is a private address", blocked=True)
    executor.billing.answers.append(blocked)
    await executor.send(QUEUE, record_back("12345_pay_1"))
    executor.publisher.published.clear()

    answer = await executor.restart_record_back("12345_pay_1", psync_resume(executor))

    assert answer.status_code == 200, answer.text
    [first] = executor.published(MessageType.RECORD_BACK)
    assert (first.payload.attempt, first.payload.round_start) == (2, 2)


async def test_a_record_back_that_is_accepted_or_retrying_or_unknown_is_not_restarted(executor: Executor) -> None:
    await executor.send(QUEUE, record_back("12345_pay_accepted"))
    executor.billing.answers.append(REFUSED)
    await executor.send(QUEUE, record_back("12345_pay_retrying"))
    executor.publisher.published.clear()

    accepted = await executor.restart_record_back("12345_pay_accepted", psync_resume(executor))
    retrying = await executor.restart_record_back("12345_pay_retrying", psync_resume(executor))
    unknown = await executor.restart_record_back("12345_pay_unknown", psync_resume(executor))
    no_dispute = await executor.restart_record_back("12345_pay_accepted", psync_resume(executor), dispute_id="dsp_x")

    assert accepted.status_code == 400 and "accepted: nothing is left" in accepted.json()["error"]["message"]
    assert retrying.status_code == 400 and "next one is on a timer" in retrying.json()["error"]["message"]
    assert unknown.status_code == 400 and "no record back for this payment" in unknown.json()["error"]["message"]
    assert no_dispute.status_code == 400
    assert no_dispute.json()["error"]["message"].startswith("no refund record of that dispute for this payment")
    assert executor.publisher.published == []


async def test_a_restart_is_refused_to_another_merchant_or_profile_to_other_tasks_and_to_a_bad_body(
    executor: Executor,
) -> None:
    await abandon(executor)

    other = await executor.restart_record_back("12345_pay_1", psync_resume(executor), merchant_id="merchant_other")
    execute = await executor.restart_record_back(
        "12345_pay_1", psync_resume(executor, revenue_recovery_task="EXECUTE_WORKFLOW")
    )
    invalid = await executor.restart_record_back(
        "12345_pay_1", {**psync_resume(executor), "schedule_time": "tomorrow morning"}
    )

    other_profile = await executor.restart_record_back(
        "12345_pay_1", psync_resume(executor), **{"x-internal-profile-id": "pro_other"}
    )
    assert other.status_code == 400 and other_profile.status_code == 400  # as a payment without a record back
    assert execute.status_code == 400 and "only PSYNC_WORKFLOW" in execute.json()["error"]["message"]
    assert invalid.status_code == 422
    assert executor.publisher.published == []
    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.ABANDONED


async def test_a_restart_that_names_the_task_only_starts_the_round_now(executor: Executor) -> None:
    """Hyperswitch's retrigger body as juspay/hyperswitch#13572 left it: `schedule_time`, `status` and
    `business_status` may be left out; the round starts now."""
    await abandon(executor)
    executor.publisher.published.clear()

    answer = await executor.restart_record_back("12345_pay_1", {"revenue_recovery_task": "PSYNC_WORKFLOW"})

    assert answer.status_code == 200, answer.text
    [first] = executor.published(MessageType.RECORD_BACK)
    assert (first.payload.attempt, first.payload.round_start) == (15, 15)
    assert executor.record_backs.progress["12345_pay_1"].status is RecordBackStatus.RETRYING


async def test_two_restarts_at_once_start_one_round(executor: Executor) -> None:
    await abandon(executor)

    # A profile-level call of the payment's own profile (intake forwards the caller's `x-profile-id`).
    first = await executor.restart_record_back(
        "12345_pay_1", psync_resume(executor), **{"x-internal-profile-id": "pro_test"}
    )
    second = await executor.restart_record_back("12345_pay_1", psync_resume(executor))

    assert first.status_code == 200 and second.status_code == 400
    assert len(executor.published(MessageType.RECORD_BACK)) == 1
