"""A dispute lost on a recovered payment: the executor records it at the payment's billing system as a refund, a
record of its own beside the payment's record back, started once per dispute, with its own tries, timers and
idempotency key, every try but the first looking at the billing system first; none where the billing system takes no
refund or the payment was never recorded back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from faststream.rabbit import TestRabbitBroker
from prometheus_client import REGISTRY

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.domain.attempt import Attempt, AttemptStatus
from recovery_executor.domain.dispute_refunds import FIRST_TRY_GRACE, looks_before_recording
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_runtime.testing import consumed
from support.payments import record_back

from .builders import LOST_AT, dispute_lost, planned, record_back_at
from .fakes import Executor, ScriptedBillingSystems, in_memory_executor

LOST = "executor.dispute-lost"
RECORD = "executor.record-back"
PAYMENT = "12345_pay_1"
REFUND = f"{PAYMENT}:dispute:dp_lost_1"  # the refund record's key, beside the payment's
REFUSED = RecordBackAnswer(accepted=False, status_code=503, error="internal_error: try again")


@pytest.fixture
def billing_systems() -> ScriptedBillingSystems:
    return ScriptedBillingSystems()


@pytest.fixture
async def executor(billing_systems: ScriptedBillingSystems) -> AsyncIterator[Executor]:
    """The executor recording at billing systems' APIs through `billing_systems` (scripted)."""
    running = in_memory_executor(lambda accounts: billing_systems)
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running


def at_chargebee(payment_id: str = PAYMENT) -> Envelope[RecordBack]:
    return record_back_at("inv_1", payment_id, system="chargebee", account="mca_chargebee", url="https://acme.cb.test")


async def recorded(
    executor: Executor,
    billing_systems: ScriptedBillingSystems,
    request: Envelope[RecordBack],
    answer: RecordBackAnswer | None = None,
) -> None:
    """The payment's record back tried once (answered `answer`, else accepted with Chargebee's transaction)."""
    billing_systems.answers.append(
        answer or RecordBackAnswer(accepted=True, status_code=200, transaction_id="txn_payment")
    )
    await executor.send(RECORD, request)
    executor.publisher.published.clear()


async def refund_started(
    executor: Executor, billing_systems: ScriptedBillingSystems, answer: RecordBackAnswer | None = None
) -> Envelope[RecordBack]:
    """The payment recorded back at Chargebee (its try answered `answer`), then a dispute lost on it: the first try
    of its refund record, as the executor emitted it."""
    await recorded(executor, billing_systems, at_chargebee(), answer)
    await executor.send(LOST, dispute_lost())
    refund = first_try(executor)
    executor.publisher.published.clear()
    return refund


def refunds_counted(billing_connector: str, outcome: str) -> float:
    labels = {"billing_connector": billing_connector, "outcome": outcome}
    return REGISTRY.get_sample_value("recovery_dispute_refunds_total", labels) or 0.0


def first_try(executor: Executor) -> Envelope[RecordBack]:
    [command] = executor.published(MessageType.RECORD_BACK)
    return Envelope[RecordBack].model_validate(command.model_dump())


async def test_the_transaction_chargebee_answered_is_kept_with_the_payments_record_back(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    await recorded(executor, billing_systems, at_chargebee(), REFUSED)
    assert executor.record_backs.progress[PAYMENT].billing_transaction_id is None
    accepted = RecordBackAnswer(accepted=True, status_code=200, transaction_id="txn_9")
    await recorded(executor, billing_systems, at_chargebee().model_copy(update={"message_id": "try-2"}), accepted)

    progress = executor.record_backs.progress[PAYMENT]
    assert (progress.status, progress.billing_transaction_id, progress.dispute_id) == (
        RecordBackStatus.ACCEPTED, "txn_9", None,
    )  # fmt: skip
    # Other billing systems (and custombilling's callback) name no transaction.
    await executor.send(RECORD, record_back_at("in_1", "12345_pay_2"))
    assert executor.record_backs.progress["12345_pay_2"].billing_transaction_id is None


async def test_a_lost_dispute_on_a_payment_recorded_at_chargebee_starts_one_refund_record(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    payment = at_chargebee()
    await recorded(executor, billing_systems, payment)
    created, duplicates = refunds_counted("chargebee", "created"), consumed(LOST, "duplicate")
    lost = dispute_lost()

    await executor.send(LOST, lost)
    await executor.send(LOST, lost)  # redelivered
    await executor.send(LOST, lost.model_copy(update={"message_id": "another-event-of-the-dispute"}))

    assert consumed(LOST, "duplicate") - duplicates == 2
    assert refunds_counted("chargebee", "created") - created == 1
    command = first_try(executor)  # one first try, however many times the loss was told
    refund = command.payload
    assert (refund.url, refund.body, refund.billing_connector, refund.billing_connector_id) == (
        payment.payload.url, payment.payload.body, "chargebee", "mca_chargebee",
    )  # fmt: skip
    assert (refund.attempt, refund.round_start) == (1, 1)
    assert refund.dispute is not None
    assert (refund.dispute.dispute_id, refund.dispute.amount, refund.dispute.currency) == ("dp_lost_1", 2250, "USD")
    assert (refund.dispute.reason, refund.dispute.lost_at) == ("fraudulent", LOST_AT)
    assert (command.merchant_id, command.profile_id, command.correlation_id) == ("merchant_test", "pro_test", PAYMENT)
    assert command.causation_id == lost.message_id
    record = executor.record_backs.progress[REFUND]
    assert (record.status, record.attempts, record.dispute_id, record.request) == (
        RecordBackStatus.RETRYING, 0, "dp_lost_1", refund,
    )  # fmt: skip
    # The payment's own record back is where it was, untouched.
    assert executor.record_backs.progress[PAYMENT].status is RecordBackStatus.ACCEPTED
    assert len(executor.record_backs.tries[PAYMENT]) == 1
    assert billing_systems.refunds == []  # the try is the command's, on the record-back queue


async def test_the_refund_is_recorded_of_the_kept_transaction_under_its_own_key(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    refund = await refund_started(executor, billing_systems)

    await executor.send(RECORD, refund)
    await executor.send(RECORD, refund.model_copy(update={"message_id": "a-timer-fired-twice"}))

    [(asked, transaction_id, key)] = billing_systems.refunds  # the copy found the refund recorded
    assert (asked, transaction_id, key) == (refund.payload, "txn_payment", f"record-back:{REFUND}")
    record = executor.record_backs.progress[REFUND]
    assert (record.status, record.attempts, record.billing_transaction_id) == (
        RecordBackStatus.ACCEPTED, 1, "txn_refund",
    )  # fmt: skip
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.dispute_id, updated.payload.state, updated.payload.billing_connector) == (
        "dp_lost_1", "accepted", "chargebee",
    )  # fmt: skip
    assert updated.payload.payment_id == PAYMENT
    payment = executor.record_backs.progress[PAYMENT]
    assert (payment.billing_transaction_id, len(executor.record_backs.tries[PAYMENT])) == ("txn_payment", 1)


async def test_a_refused_refund_is_tried_again_on_timers_of_its_own(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    refund = await refund_started(executor, billing_systems)
    billing_systems.refund_answers.append(REFUSED)

    await executor.send(RECORD, refund)

    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    # Never the payment's own timer id (`record-back:12345_pay_1:2`).
    assert (timer.payload.timer_id, timer.payload.kind) == (f"record-back:{REFUND}:2", "record_back")
    assert timer.payload.due_at == executor.clock.now() + timedelta(minutes=1)
    again = Envelope[RecordBack].model_validate(timer.payload.message)
    assert again.payload.attempt == 2 and again.payload.dispute == refund.payload.dispute
    assert executor.record_backs.progress[REFUND].status is RecordBackStatus.RETRYING
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.dispute_id, updated.payload.state, updated.payload.error) == (
        "dp_lost_1", "retrying", "internal_error: try again",
    )  # fmt: skip

    executor.clock.advance(timedelta(minutes=1))
    await executor.send(RECORD, again)
    assert executor.record_backs.progress[REFUND].status is RecordBackStatus.ACCEPTED
    assert {key for _, _, key in billing_systems.refunds} == {f"record-back:{REFUND}"}
    assert executor.record_backs.progress[PAYMENT].status is RecordBackStatus.ACCEPTED


async def test_a_refund_waits_for_the_payments_own_record_back(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    # The payment's record back is being retried: the refund record is made all the same.
    refund = await refund_started(executor, billing_systems, REFUSED)

    await executor.send(RECORD, refund)

    assert billing_systems.refunds == []  # not asked: nothing recorded there to refund yet
    [tried] = executor.record_backs.tries[REFUND]
    assert (tried.error, tried.outcome) == ("the payment is not recorded at chargebee yet", RecordBackStatus.RETRYING)
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    # The payment's record back accepted (its next try), the refund's next try goes through.
    await recorded(executor, billing_systems, at_chargebee().model_copy(update={"message_id": "payment-try-2"}))
    await executor.send(RECORD, Envelope[RecordBack].model_validate(timer.payload.message))
    [(_, transaction_id, _)] = billing_systems.refunds
    assert transaction_id == "txn_payment"
    assert executor.record_backs.progress[REFUND].status is RecordBackStatus.ACCEPTED


async def test_a_refund_of_a_payment_whose_transaction_was_not_kept_is_asked_without_one(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    """An "already paid" answer (or a record back before ids were kept) named no transaction: the recorder finds
    the payment at Chargebee by the connector's charge (adapters/billing_systems.py; test_chargebee_refund.py)."""
    refund = await refund_started(executor, billing_systems, RecordBackAnswer(accepted=True, status_code=400))

    await executor.send(RECORD, refund)

    [(_, transaction_id, _)] = billing_systems.refunds
    assert transaction_id is None


async def test_a_lost_dispute_on_a_payment_recorded_at_stripe_billing_starts_its_refund_record(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    """Stripe Billing takes it as a credit note of the invoice (test_stripe_credit_note.py)."""
    payment = record_back_at("in_1", system="stripebilling", account="mca_stripebilling")
    await recorded(executor, billing_systems, payment, RecordBackAnswer(accepted=True, status_code=200))
    created = refunds_counted("stripebilling", "created")

    await executor.send(LOST, dispute_lost())
    refund = first_try(executor)
    executor.publisher.published.clear()
    await executor.send(RECORD, refund)

    assert refunds_counted("stripebilling", "created") - created == 1
    assert (refund.payload.billing_connector, refund.payload.body) == ("stripebilling", payment.payload.body)
    [(asked, transaction_id, key)] = billing_systems.refunds
    assert (asked, transaction_id, key) == (refund.payload, None, f"record-back:{REFUND}")
    assert executor.record_backs.progress[REFUND].status is RecordBackStatus.ACCEPTED


@pytest.mark.parametrize(
    ("attempt", "round_start", "looks"),
    [(1, 1, False), (2, 1, True), (14, 1, True), (15, 15, True)],
    ids=["first-try", "second-try", "last-try", "first-try-of-a-restarted-round"],
)
def test_every_try_of_a_refund_but_the_first_looks_at_the_billing_system_first(
    attempt: int, round_start: int, looks: bool
) -> None:
    refund = at_chargebee().payload.model_copy(
        update={
            "attempt": attempt,
            "round_start": round_start,
            "dispute": DisputeRefund(dispute_id="dp_lost_1", amount=2250, currency="USD", lost_at=LOST_AT),
        }
    )

    assert looks_before_recording(refund) is looks


async def test_a_custombilling_payment_gets_no_refund_record(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    """Its callback's body (Hyperswitch's record back) has no refund; Recurly, Stripe Billing and Chargebee get one."""
    payment = record_back(PAYMENT)  # custombilling: the callback to record_back_url
    await executor.send(RECORD, payment)
    executor.publisher.published.clear()
    before = refunds_counted("custombilling", "not_supported")

    await executor.send(LOST, dispute_lost())

    assert executor.publisher.published == []
    assert set(executor.record_backs.progress) == {PAYMENT}
    assert refunds_counted("custombilling", "not_supported") - before == 1


@pytest.mark.parametrize("system", ["chargebee", "stripebilling", "recurly"])
async def test_every_billing_system_with_an_api_gets_a_refund_record(
    executor: Executor, billing_systems: ScriptedBillingSystems, system: str
) -> None:
    await recorded(
        executor, billing_systems, record_back_at("in_1", system=system, account="mca_b", url="https://b.test")
    )
    before = refunds_counted(system, "created")

    await executor.send(LOST, dispute_lost())

    refund = first_try(executor).payload
    assert (refund.billing_connector, refund.dispute is not None and refund.dispute.dispute_id) == (system, "dp_lost_1")
    assert set(executor.record_backs.progress) == {PAYMENT, REFUND}
    assert refunds_counted(system, "created") - before == 1


async def test_a_payment_never_recorded_back_gets_no_refund_record(executor: Executor) -> None:
    before = refunds_counted("none", "no_record_back")

    await executor.send(LOST, dispute_lost("12345_pay_never_recorded"))

    assert executor.publisher.published == [] and executor.record_backs.progress == {}
    assert refunds_counted("none", "no_record_back") - before == 1


def succeeded_here(executor: Executor, payment_id: str, settled_ago: timedelta) -> None:
    """An attempt of the payment that succeeded at this executor `settled_ago` (its record back commanded then)."""
    claimed = Attempt.claim(planned(payment_id=payment_id).payload, "execute-1", "executor-1", executor.clock.now())
    settled = executor.clock.now() - settled_ago
    executor.attempts.records[claimed.key] = replace(claimed, status=AttemptStatus.SUCCEEDED, settled_at=settled)


async def test_a_dispute_lost_before_the_payments_record_back_made_its_first_try_waits_for_it(
    executor: Executor, billing_systems: ScriptedBillingSystems, requeues: list[int]
) -> None:
    """The success commanded the record back moments ago; it has not stored its first try yet (a backlog, a slow
    billing system). The dispute is handed back rather than taken for one on a payment never recorded back, and
    once the record back is there the same message starts the refund record."""
    succeeded_here(executor, PAYMENT, timedelta(seconds=2))
    lost = dispute_lost()
    before = refunds_counted("none", "no_record_back")

    await executor.send(LOST, lost)

    assert requeues and REFUND not in executor.record_backs.progress
    assert refunds_counted("none", "no_record_back") == before
    await recorded(executor, billing_systems, at_chargebee())
    await executor.send(LOST, lost)  # an operator replays it from the dead letters, or a redelivery comes
    assert executor.record_backs.progress[REFUND].status is RecordBackStatus.RETRYING
    assert first_try(executor).payload.dispute is not None


async def test_a_payment_that_succeeded_long_ago_and_was_never_recorded_back_gets_no_refund_at_once(
    executor: Executor, requeues: list[int]
) -> None:
    succeeded_here(executor, "12345_pay_never_recorded", FIRST_TRY_GRACE + timedelta(minutes=1))
    before = refunds_counted("none", "no_record_back")

    await executor.send(LOST, dispute_lost("12345_pay_never_recorded"))

    assert requeues == [] and executor.record_backs.progress == {}
    assert refunds_counted("none", "no_record_back") - before == 1


async def test_a_lost_dispute_told_for_another_merchants_payment_is_dead_lettered(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    await recorded(executor, billing_systems, at_chargebee())

    await executor.send(LOST, dispute_lost(merchant_id="merchant_other"))

    [letter] = executor.publisher.dead_letters
    assert letter.queue == LOST and "is not merchant merchant_other's" in letter.reason
    assert set(executor.record_backs.progress) == {PAYMENT}


async def test_a_refund_command_for_a_billing_system_without_refunds_is_refused_for_good(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    """Not one the dispute-lost consumer makes; should one come (replayed by hand), nothing is sent anywhere, not
    even the payment's body to its custombilling callback."""
    payment = record_back(PAYMENT)
    await executor.send(RECORD, payment)
    refund = DisputeRefund(dispute_id="dp_lost_1", amount=2250, currency="USD", lost_at=LOST_AT)
    stray = payment.model_copy(
        update={"message_id": "by-hand", "payload": payment.payload.model_copy(update={"dispute": refund})}
    )

    await executor.send(RECORD, stray)

    [tried] = executor.record_backs.tries[REFUND]
    assert (tried.outcome, tried.error) == (RecordBackStatus.BLOCKED, "no refund record for custombilling")
    assert billing_systems.refunds == [] and len(executor.billing.calls) == 1  # the payment's own, only
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


async def test_the_refund_record_is_read_and_restarted_beside_the_payments(
    executor: Executor, billing_systems: ScriptedBillingSystems
) -> None:
    refund = await refund_started(executor, billing_systems)
    billing_systems.refund_answers.append(RecordBackAnswer(accepted=False, error="blocked: x", blocked=True))
    await executor.send(RECORD, refund)
    executor.publisher.published.clear()

    payment_view = (await executor.record_back_of(PAYMENT)).json()
    refund_view = (await executor.record_back_of(PAYMENT, dispute_id="dp_lost_1")).json()
    resume = {
        "revenue_recovery_task": "PSYNC_WORKFLOW",
        "schedule_time": executor.clock.now().isoformat(),
        "status": "finish",
        "business_status": "COMPLETED_PSYNC_TASK",
    }
    restarted = await executor.restart_record_back(PAYMENT, resume, dispute_id="dp_lost_1")

    assert (payment_view["status"], "dispute_id" in payment_view) == ("accepted", False)
    assert (refund_view["dispute_id"], refund_view["status"], refund_view["tries"]) == ("dp_lost_1", "blocked", 1)
    assert restarted.status_code == 200, restarted.text
    [again] = executor.published(MessageType.RECORD_BACK)
    assert (again.payload.attempt, again.payload.round_start, again.payload.dispute) == (2, 2, refund.payload.dispute)
    assert (await executor.record_back_of(PAYMENT, dispute_id="dp_unknown")).status_code == 404
