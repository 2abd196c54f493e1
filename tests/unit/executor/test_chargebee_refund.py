"""A lost dispute recorded at Chargebee as an offline refund, over real HTTP on loopback through the egress policy's
client, against the Chargebee sandbox: of the transaction `record_payment` answered with (kept with the payment's
record back), else of the payment found among the invoice's payments by the connector's charge; once per dispute,
retried while Chargebee fails, taken as done when Chargebee has the payment refunded already, and once even when an
answer was lost and the next try comes after Chargebee's idempotency window (a later try looks first)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.domain.billing_systems import chargebee_answer, chargebee_refund_form
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_sandbox import chargebee
from recovery_sandbox.serving import BackgroundServer

from .billing_apis import executor_at_billing_api, record_back_accepted, refund_first_try
from .builders import LOST_AT, billing_account, record_back_at
from .fakes import Executor

RECORD = "executor.record-back"
ACCOUNT, KEY = "mca_chargebee", "test_chargebee_key"


@pytest.fixture
def site() -> Iterator[BackgroundServer]:
    """A Chargebee site of the test's own: a later try looks for the dispute's refund across the site, and the
    tests' dispute ids are alike."""
    with BackgroundServer(chargebee.create_app()) as server:
        yield server


@pytest.fixture
def cb(site: BackgroundServer) -> Iterator[httpx.Client]:
    """Chargebee's API as the merchant (or a test) uses it."""
    with httpx.Client(base_url=site.url, auth=(KEY, ""), timeout=10) as client:
        yield client


@pytest.fixture
async def executor(
    site: BackgroundServer, sent: list[httpx.Request], lost_answers: list[str]
) -> AsyncIterator[Executor]:
    account = billing_account(ACCOUNT, "chargebee", KEY)
    async with executor_at_billing_api(account, sent, lost_answers, "") as running:
        yield running


def new_invoice(cb: httpx.Client) -> str:
    made = cb.post("/api/v2/invoices", data={"customer_id": "cb_1", "charges[amount][0]": "2250"})
    return str(made.json()["invoice"]["id"])


def pay_at_chargebee(cb: httpx.Client, invoice_id: str, charge: str, amount: int) -> dict[str, Any]:
    """A payment the merchant recorded at Chargebee themselves."""
    form = {
        "transaction[amount]": str(amount),
        "transaction[payment_method]": "card",
        "transaction[id_at_gateway]": charge,
        "transaction[status]": "success",
    }
    return dict(cb.post(f"/api/v2/invoices/{invoice_id}/record_payment", data=form).json()["transaction"])


def payments_of(cb: httpx.Client, invoice_id: str) -> list[dict[str, Any]]:
    return [entry["transaction"] for entry in cb.get(f"/api/v2/invoices/{invoice_id}/payments").json()["list"]]


def refund_by_hand(cb: httpx.Client, transaction_id: str) -> int:
    """The merchant records the chargeback at Chargebee themselves (the whole payment)."""
    by_hand = {"payment_method": "chargeback", "date": str(int(LOST_AT.timestamp()))}
    return cb.post(f"/api/v2/transactions/{transaction_id}/record_refund", data=by_hand).status_code


def fail_refunds(cb: httpx.Client, count: int, status: int = 503) -> None:
    cb.post("/_sandbox/refund_failures", json={"count": count, "status": status})


def window_over(cb: httpx.Client) -> int:
    """Chargebee's 30-minute idempotency window over for every key so far: how many keys it forgot."""
    return int(cb.post("/_sandbox/idempotency/expire").json()["forgotten"])


def transaction(cb: httpx.Client, transaction_id: str) -> dict[str, Any]:
    return dict(cb.get(f"/api/v2/transactions/{transaction_id}").json()["transaction"])


async def recorded_back(executor: Executor, site: BackgroundServer, invoice_id: str, payment_id: str) -> None:
    """The recovered payment (the connector's charge `pi_approved`) recorded back at Chargebee by the executor."""
    await record_back_accepted(
        executor, record_back_at(invoice_id, payment_id, system="chargebee", account=ACCOUNT, url=site.url)
    )


async def lost(executor: Executor, payment_id: str, amount: int = 2250) -> Envelope[RecordBack]:
    """The dispute lost on the payment: the first try of its refund record, as the executor emitted it."""
    return await refund_first_try(executor, payment_id, amount)


def form_of(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


async def test_the_refund_is_recorded_of_the_transaction_record_payment_answered_with(
    executor: Executor, site: BackgroundServer, cb: httpx.Client, sent: list[httpx.Request]
) -> None:
    invoice_id = new_invoice(cb)
    await recorded_back(executor, site, invoice_id, "12345_pay_cb1")
    [payment] = payments_of(cb, invoice_id)
    assert executor.record_backs.progress["12345_pay_cb1"].billing_transaction_id == payment["id"]
    refund = await lost(executor, "12345_pay_cb1")
    sent.clear()

    await executor.send(RECORD, refund)
    await executor.send(RECORD, refund.model_copy(update={"message_id": "a-timer-fired-twice"}))

    [call] = sent  # no lookup (the id was kept), and the copy found the refund recorded
    assert (call.method, call.url.path) == ("POST", f"/api/v2/transactions/{payment['id']}/record_refund")
    assert call.headers["chargebee-idempotency-key"] == "record-back:12345_pay_cb1:dispute:dp_lost_1"
    assert call.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert form_of(call) == {
        "amount": "2250",
        "payment_method": "chargeback",
        "date": str(int(LOST_AT.timestamp())),
        "reference_number": "dp_lost_1",
        "comment": "Dispute dp_lost_1 lost: fraudulent",
    }
    [linked] = transaction(cb, payment["id"])["linked_refunds"]
    made = transaction(cb, linked["txn_id"])
    assert (made["type"], made["amount"], made["payment_method"], made["reference_transaction_id"]) == (
        "refund", 2250, "chargeback", payment["id"],
    )  # fmt: skip
    assert made["reference_number"] == "dp_lost_1"  # what a later try would look for
    record = executor.record_backs.progress["12345_pay_cb1:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, made["id"])
    view = (await executor.record_back_of("12345_pay_cb1", dispute_id="dp_lost_1")).json()
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in view["attempts"]] == [(1, 200, "accepted")]


async def test_without_a_kept_transaction_the_payment_is_found_by_the_connectors_charge(
    executor: Executor, site: BackgroundServer, cb: httpx.Client, sent: list[httpx.Request]
) -> None:
    """The invoice was paid at Chargebee in two parts before the executor's record back, which Chargebee therefore
    answered "not due" (recorded already: no transaction named); the refund is of the part the connector's charge
    `pi_approved` paid, not of the other."""
    invoice_id = new_invoice(cb)
    other = pay_at_chargebee(cb, invoice_id, "pi_other", 1000)
    ours = pay_at_chargebee(cb, invoice_id, "pi_approved", 1250)
    await recorded_back(executor, site, invoice_id, "12345_pay_cb2")
    assert executor.record_backs.progress["12345_pay_cb2"].billing_transaction_id is None
    refund = await lost(executor, "12345_pay_cb2", amount=1250)
    sent.clear()

    await executor.send(RECORD, refund)

    lookup, call = sent
    assert (lookup.method, lookup.url.path, lookup.url.params["limit"]) == (
        "GET", f"/api/v2/invoices/{invoice_id}/payments", "100",
    )  # fmt: skip
    assert call.url.path == f"/api/v2/transactions/{ours['id']}/record_refund"
    assert [r["txn_amount"] for r in transaction(cb, ours["id"])["linked_refunds"]] == [1250]
    assert transaction(cb, other["id"])["linked_refunds"] == []
    assert executor.record_backs.progress["12345_pay_cb2:dispute:dp_lost_1"].status is RecordBackStatus.ACCEPTED


async def test_a_payment_chargebee_does_not_list_is_looked_for_again_later(
    executor: Executor, site: BackgroundServer, cb: httpx.Client, sent: list[httpx.Request]
) -> None:
    invoice_id = new_invoice(cb)
    pay_at_chargebee(cb, invoice_id, "pi_elsewhere", 2250)
    await recorded_back(executor, site, invoice_id, "12345_pay_cb3")
    refund = await lost(executor, "12345_pay_cb3")
    sent.clear()

    await executor.send(RECORD, refund)

    assert [request.method for request in sent] == ["GET"]  # nothing refunded
    [tried] = executor.record_backs.tries["12345_pay_cb3:dispute:dp_lost_1"]
    assert (tried.outcome, tried.error) == (
        RecordBackStatus.RETRYING, f"no payment of pi_approved on Chargebee invoice {invoice_id} yet",
    )  # fmt: skip
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1


async def test_chargebee_failing_is_retried_under_the_same_key_and_refunds_once(
    executor: Executor, site: BackgroundServer, cb: httpx.Client, sent: list[httpx.Request]
) -> None:
    invoice_id = new_invoice(cb)
    await recorded_back(executor, site, invoice_id, "12345_pay_cb4")
    refund = await lost(executor, "12345_pay_cb4")
    fail_refunds(cb, 1)
    sent.clear()

    await executor.send(RECORD, refund)
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    await executor.send(RECORD, Envelope[RecordBack].model_validate(timer.payload.message))

    payment = executor.record_backs.progress["12345_pay_cb4"].billing_transaction_id
    first, look, second = sent  # the second try looked for the dispute's refund first: none was made
    assert (look.method, look.url.path) == ("GET", "/api/v2/transactions")
    assert (look.url.params["reference_number[is]"], look.url.params["type[is]"]) == ("dp_lost_1", "refund")
    assert {call.headers["chargebee-idempotency-key"] for call in (first, second)} == {
        "record-back:12345_pay_cb4:dispute:dp_lost_1"
    }
    assert form_of(first) == form_of(second)  # the same request: Chargebee's key compares it
    view = (await executor.record_back_of("12345_pay_cb4", dispute_id="dp_lost_1")).json()
    assert [(a["status_code"], a["outcome"]) for a in view["attempts"]] == [(503, "retrying"), (200, "accepted")]
    assert payment is not None and len(transaction(cb, payment)["linked_refunds"]) == 1


@pytest.mark.parametrize("amount", [1000, 1500], ids=["a-repeat-would-refund-twice", "a-repeat-would-be-refused"])
async def test_a_lost_answer_then_a_try_after_chargebees_idempotency_window_refunds_once(
    executor: Executor,
    site: BackgroundServer,
    cb: httpx.Client,
    sent: list[httpx.Request],
    lost_answers: list[str],
    amount: int,
) -> None:
    """Chargebee recorded the refund but its answer was lost; the next try comes after Chargebee's 30-minute window
    (the sandbox's keys expired). Asked again, Chargebee would record a second refund (1000 of 2250), or refuse one
    above what is left (1500: tried until abandoned, though recorded). The later try finds the refund instead."""
    invoice_id = new_invoice(cb)
    await recorded_back(executor, site, invoice_id, f"12345_pay_cb_{amount}")
    payment = executor.record_backs.progress[f"12345_pay_cb_{amount}"].billing_transaction_id
    refund = await lost(executor, f"12345_pay_cb_{amount}", amount=amount)
    lost_answers.append(f"/api/v2/transactions/{payment}/record_refund")
    await executor.send(RECORD, refund)
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert window_over(cb) >= 1
    executor.clock.advance(timedelta(minutes=51))
    sent.clear()

    await executor.send(RECORD, Envelope[RecordBack].model_validate(timer.payload.message))

    [linked] = transaction(cb, str(payment))["linked_refunds"]
    [look] = sent  # one read found it: nothing asked again
    assert (look.method, look.url.path, look.url.params["reference_number[is]"]) == (
        "GET", "/api/v2/transactions", "dp_lost_1",
    )  # fmt: skip
    assert linked["txn_amount"] == amount
    tries = executor.record_backs.tries[f"12345_pay_cb_{amount}:dispute:dp_lost_1"]
    assert [(t.status_code, t.outcome) for t in tries] == [
        (None, RecordBackStatus.RETRYING), (200, RecordBackStatus.ACCEPTED),
    ]  # fmt: skip
    record = executor.record_backs.progress[f"12345_pay_cb_{amount}:dispute:dp_lost_1"]
    assert record.billing_transaction_id == linked["txn_id"]


async def test_a_payment_chargebee_has_refunded_already_needs_no_refund(
    executor: Executor, site: BackgroundServer, cb: httpx.Client
) -> None:
    invoice_id = new_invoice(cb)
    await recorded_back(executor, site, invoice_id, "12345_pay_cb5")
    payment = str(executor.record_backs.progress["12345_pay_cb5"].billing_transaction_id)
    assert refund_by_hand(cb, payment) == 200
    refund = await lost(executor, "12345_pay_cb5")

    await executor.send(RECORD, refund)

    [tried] = executor.record_backs.tries["12345_pay_cb5:dispute:dp_lost_1"]
    assert (tried.status_code, tried.outcome) == (400, RecordBackStatus.ACCEPTED)
    assert len(transaction(cb, payment)["linked_refunds"]) == 1
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


@pytest.mark.parametrize(
    ("status_code", "body", "expected"),
    [
        (
            200,
            {"transaction": {"id": "txn_refund", "type": "refund"}},
            RecordBackAnswer(accepted=True, status_code=200, transaction_id="txn_refund"),
        ),
        (200, {}, RecordBackAnswer(accepted=True, status_code=200)),
        (
            400,
            {"api_error_code": "invalid_state_for_request", "message": "Transaction txn_1 is refunded in full"},
            RecordBackAnswer(accepted=True, status_code=400),
        ),
        (
            400,
            {"api_error_code": "param_wrong_value", "message": "amount cannot be more than 250", "param": "amount"},
            RecordBackAnswer(
                accepted=False, status_code=400, error="param_wrong_value: amount cannot be more than 250"
            ),
        ),
        (
            404,
            {"api_error_code": "resource_not_found", "message": "Sorry, we couldn't find that resource: txn_1"},
            RecordBackAnswer(
                accepted=False,
                status_code=404,
                error="resource_not_found: Sorry, we couldn't find that resource: txn_1",
            ),
        ),
    ],
)
def test_chargebees_answers_to_a_refund_read(
    status_code: int, body: dict[str, Any], expected: RecordBackAnswer
) -> None:
    assert chargebee_answer(status_code, body) == expected


def test_the_refund_form_names_the_dispute_within_chargebees_limits() -> None:
    lost_at = datetime(2026, 2, 20, 9, 30, tzinfo=UTC)
    without_reason = DisputeRefund(dispute_id="dp_9", amount=100, currency="EUR", lost_at=lost_at)
    long_reason = without_reason.model_copy(update={"reason": "x" * 400})
    long_id = without_reason.model_copy(update={"dispute_id": "d" * 120})

    assert chargebee_refund_form(without_reason) == {
        "amount": "100",
        "payment_method": "chargeback",
        "date": "1771579800",
        "reference_number": "dp_9",
        "comment": "Dispute dp_9 lost",
    }
    assert len(chargebee_refund_form(long_reason)["comment"]) == 300
    assert chargebee_refund_form(long_id)["reference_number"] == "d" * 100  # Chargebee's limit
