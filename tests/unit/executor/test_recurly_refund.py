"""A lost dispute recorded at Recurly as a refund of the invoice settled outside Recurly (`external_refund`), over real
HTTP on loopback through the egress policy's client, against the Recurly sandbox: the exact request on the first try
(nothing read first), the amount in Recurly's decimal units as intake reads them, once even when an answer was lost and
the next try comes after Recurly forgot the idempotency key (a later try finds the credit invoice, across pages), a
refusal retried on the timers, and a look that cannot be read tried again rather than a blind second refund."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from recovery_contracts.api.currency import minor_units
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.domain.billing_systems import recurly_amount, recurly_refund_body
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_sandbox import recurly
from recovery_sandbox.serving import BackgroundServer

from .billing_apis import executor_at_billing_api, next_try, record_back_accepted, refund_first_try
from .builders import LOST_AT, billing_account, record_back_at
from .fakes import Executor

RECORD = "executor.record-back"
ACCOUNT, KEY = "mca_recurly", "recurly_private_key_refunds"
ACCEPT = "application/vnd.recurly.v2021-02-25"


@pytest.fixture(scope="module")
def sandbox_app() -> FastAPI:
    return recurly.create_app()


@pytest.fixture
def api(sandbox: BackgroundServer) -> Iterator[httpx.Client]:
    """Recurly's API as the merchant (or a test) uses it; the controls under `/_sandbox` ignore the headers."""
    with httpx.Client(base_url=sandbox.url, auth=(KEY, ""), headers={"Accept": ACCEPT}, timeout=10) as client:
        yield client


@pytest.fixture
async def executor(
    sandbox: BackgroundServer, sent: list[httpx.Request], lost_answers: list[str]
) -> AsyncIterator[Executor]:
    async with executor_at_billing_api(billing_account(ACCOUNT, "recurly", KEY), sent, lost_answers) as running:
        yield running


def refund_by_hand(api: httpx.Client, invoice_id: str, amount: float) -> httpx.Response:
    """The merchant refunds part of the invoice at Recurly themselves."""
    body = {"type": "amount", "amount": amount, "external_refund": {"payment_method": "check"}}
    return api.post(f"/invoices/{invoice_id}/refund", json=body)


def new_invoice(api: httpx.Client) -> str:
    return str(api.post("/_sandbox/invoices", json={"account_code": "acct-1", "amount": 2250}).json()["id"])


def refundable(api: httpx.Client, invoice_id: str) -> float:
    return float(api.get(f"/invoices/{invoice_id}").json()["refundable_amount"])


def window_over(api: httpx.Client) -> int:
    """Recurly forgets every idempotency key it kept (the sandbox's control): how many."""
    return int(api.post("/_sandbox/idempotency/expire").json()["forgotten"])


def credit_invoices_of(api: httpx.Client, invoice_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/invoices/{invoice_id}/related_invoices", params={"limit": "200"}).json()
    return list(page["data"])


async def lost(
    executor: Executor, api: httpx.Client, sandbox: BackgroundServer, payment_id: str, amount: int = 2250
) -> tuple[str, Envelope[RecordBack]]:
    """An invoice the executor marked paid at Recurly, then a dispute lost on the payment: the invoice, and the first
    try of the refund record as the executor emitted it."""
    invoice_id = new_invoice(api)
    await record_back_accepted(
        executor, record_back_at(invoice_id, payment_id, system="recurly", account=ACCOUNT, url=sandbox.url)
    )
    return invoice_id, await refund_first_try(executor, payment_id, amount)


async def test_the_lost_dispute_is_a_refund_of_the_invoice_settled_outside_recurly(
    executor: Executor, api: httpx.Client, sandbox: BackgroundServer, sent: list[httpx.Request]
) -> None:
    invoice_id, refund = await lost(executor, api, sandbox, "12345_pay_rr1")
    sent.clear()

    await executor.send(RECORD, refund)
    await executor.send(RECORD, refund.model_copy(update={"message_id": "a-timer-fired-twice"}))

    [call] = sent  # the first try reads nothing first; the copy found the record accepted
    assert (call.method, call.url.path) == ("POST", f"/invoices/{invoice_id}/refund")
    assert json.loads(call.content) == {
        "type": "amount",
        "amount": 22.5,
        "credit_customer_notes": "Dispute dp_lost_1 lost: fraudulent",
        "external_refund": {
            "payment_method": "other",
            "description": "Dispute dp_lost_1 lost: fraudulent",
            "refunded_at": "2026-02-20T09:30:00Z",
        },
    }
    assert call.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert (call.headers["accept"], call.headers["content-type"]) == (ACCEPT, "application/json")
    assert call.headers["idempotency-key"] == "record-back:12345_pay_rr1:dispute:dp_lost_1"
    [credit] = credit_invoices_of(api, invoice_id)
    assert (credit["type"], credit["previous_invoice_id"], credit["total"]) == ("credit", invoice_id, -22.5)
    assert refundable(api, invoice_id) == 0
    record = executor.record_backs.progress["12345_pay_rr1:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, credit["id"])
    view = (await executor.record_back_of("12345_pay_rr1", dispute_id="dp_lost_1")).json()
    assert (view["billing_connector"], [(a["status_code"], a["outcome"]) for a in view["attempts"]]) == (
        "recurly", [(200, "accepted")],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "currency", "sent_as"),
    [
        (2250, "USD", "22.5"),
        (1999, "USD", "19.99"),
        (1, "USD", "0.01"),
        (100000, "USD", "1000.0"),
        # Zero- and three-decimal currencies: a yen is its own minor unit, a Kuwaiti dinar has 1,000 fils.
        (1000, "JPY", "1000.0"),
        (1234, "KWD", "1.234"),
    ],
)
def test_the_amount_is_sent_in_recurlys_decimal_units(amount: int, currency: str, sent_as: str) -> None:
    refund = DisputeRefund(dispute_id="dp_9", amount=amount, currency=currency, lost_at=LOST_AT)

    assert json.dumps(recurly_refund_body(refund)["amount"]) == sent_as


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_the_amount_is_what_intake_read_from_recurly(currency: str) -> None:
    """Intake reads a Recurly amount with `minor_units`: every refund's amount reads back as itself."""
    assert all(minor_units(recurly_amount(minor, currency), currency) == minor for minor in range(200_000))


def test_a_description_too_long_for_recurly_names_the_dispute_and_the_notes_keep_the_reason() -> None:
    dispute_id = "dsp_" + "0f" * 16
    refund = DisputeRefund(dispute_id=dispute_id, amount=100, currency="USD", reason="fraudulent", lost_at=LOST_AT)

    body = recurly_refund_body(refund)

    assert body["external_refund"]["description"] == f"Dispute {dispute_id} lost"
    assert len(body["external_refund"]["description"]) <= 50
    assert body["credit_customer_notes"] == f"Dispute {dispute_id} lost: fraudulent"


@pytest.mark.parametrize("amount", [1000, 1500], ids=["a-repeat-would-refund-twice", "a-repeat-would-be-refused"])
async def test_a_lost_answer_then_a_try_after_recurlys_idempotency_window_refunds_once(
    executor: Executor,
    api: httpx.Client,
    sandbox: BackgroundServer,
    sent: list[httpx.Request],
    lost_answers: list[str],
    amount: int,
) -> None:
    """Recurly refunded but its answer was lost; the next try comes after Recurly forgot the key (the sandbox's
    window ended). Asked again, Recurly would refund a second time (1000 of 2250), or refuse more than what is left
    (1500: tried until abandoned, though recorded). The later try finds the credit invoice instead."""
    payment_id = f"12345_pay_rr_{amount}"
    invoice_id, refund = await lost(executor, api, sandbox, payment_id, amount=amount)
    lost_answers.append(f"/invoices/{invoice_id}/refund")
    await executor.send(RECORD, refund)
    [tried] = executor.record_backs.tries[f"{payment_id}:dispute:dp_lost_1"]
    assert (tried.status_code, tried.outcome) == (None, RecordBackStatus.RETRYING)  # no answer came
    assert window_over(api) >= 1
    executor.clock.advance(timedelta(hours=25))
    sent.clear()

    await executor.send(RECORD, next_try(executor))

    [look] = sent  # nothing asked again
    assert (look.method, look.url.path) == ("GET", f"/invoices/{invoice_id}/related_invoices")
    [credit] = credit_invoices_of(api, invoice_id)
    assert (credit["total"], credit["customer_notes"]) == (-amount / 100, "Dispute dp_lost_1 lost: fraudulent")
    record = executor.record_backs.progress[f"{payment_id}:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, credit["id"])
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


async def test_the_look_follows_recurlys_pages_to_the_credit_invoice(
    executor: Executor,
    api: httpx.Client,
    sandbox: BackgroundServer,
    sent: list[httpx.Request],
    lost_answers: list[str],
) -> None:
    """The refund's answer was lost, and the merchant refunded more afterwards: the related invoices come newest
    first, 20 a page, so the refund this record made is on the second page."""
    invoice_id, refund = await lost(executor, api, sandbox, "12345_pay_rr_pages", amount=1000)
    lost_answers.append(f"/invoices/{invoice_id}/refund")
    await executor.send(RECORD, refund)
    assert all(refund_by_hand(api, invoice_id, 0.01).status_code == 200 for _ in range(20))
    window_over(api)
    sent.clear()

    await executor.send(RECORD, next_try(executor))

    assert [(r.method, r.url.path, r.url.params.get("cursor")) for r in sent] == [
        ("GET", f"/invoices/{invoice_id}/related_invoices", None),
        ("GET", f"/invoices/{invoice_id}/related_invoices", "20"),
    ]
    ours = [c for c in credit_invoices_of(api, invoice_id) if c["customer_notes"]]
    assert [c["total"] for c in ours] == [-10.0]
    record = executor.record_backs.progress["12345_pay_rr_pages:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, ours[0]["id"])


async def test_a_refund_recurly_refuses_is_tried_again_on_the_timers(
    executor: Executor, api: httpx.Client, sandbox: BackgroundServer, sent: list[httpx.Request]
) -> None:
    """The merchant refunded most of the invoice by hand before: Recurly refuses more than what is left; the
    refusal is kept and tried again, each later try looking first."""
    invoice_id, refund = await lost(executor, api, sandbox, "12345_pay_rr3")
    assert refund_by_hand(api, invoice_id, 20.0).status_code == 200

    await executor.send(RECORD, refund)
    again = next_try(executor)
    executor.clock.advance(timedelta(minutes=1))
    sent.clear()
    await executor.send(RECORD, again)

    tries = executor.record_backs.tries["12345_pay_rr3:dispute:dp_lost_1"]
    assert [(t.status_code, t.outcome) for t in tries] == [(422, RecordBackStatus.RETRYING)] * 2
    assert tries[0].error == "validation: Amount cannot exceed the refundable amount of 2.50"
    assert [(r.method, r.url.path) for r in sent] == [
        ("GET", f"/invoices/{invoice_id}/related_invoices"),
        ("POST", f"/invoices/{invoice_id}/refund"),
    ]
    assert len(credit_invoices_of(api, invoice_id)) == 1  # the merchant's only
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1


async def test_a_look_that_cannot_be_read_is_tried_again_not_a_second_refund(
    executor: Executor,
    api: httpx.Client,
    sandbox: BackgroundServer,
    sent: list[httpx.Request],
    lost_answers: list[str],
) -> None:
    invoice_id, refund = await lost(executor, api, sandbox, "12345_pay_rr4")
    lost_answers.extend([f"/invoices/{invoice_id}/refund", f"/invoices/{invoice_id}/related_invoices"])
    await executor.send(RECORD, refund)
    window_over(api)
    sent.clear()

    await executor.send(RECORD, next_try(executor))

    assert [(r.method, r.url.path) for r in sent] == [("GET", f"/invoices/{invoice_id}/related_invoices")]
    tries = executor.record_backs.tries["12345_pay_rr4:dispute:dp_lost_1"]
    assert [t.outcome for t in tries] == [RecordBackStatus.RETRYING] * 2
    assert len(credit_invoices_of(api, invoice_id)) == 1
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1
