"""Record back: the billing connector hears of a successful retry once it answers 2xx, tried on durable timers."""

from __future__ import annotations

import json
from datetime import timedelta

from recovery_contracts.envelope import MessageType
from recovery_executor.domain.follow_up import RECORD_BACK_MAX_TRIES
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_runtime.testing import consumed

from .builders import record_back
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
