"""The Chargebee sandbox (under the Stripe sandbox's `/chargebee`) over real HTTP: invoices, record_payment and the
transaction it answers with, an invoice's payments, offline refunds of a payment (a lost dispute's chargeback), the
writes' idempotency keys (kept for Chargebee's 30-minute window), and payment_failed webhooks with the configured basic
auth."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from recovery_sandbox.chargebee import Chargebee
from recovery_sandbox.injected_failures import FailureSwitch
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration
KEY = "test_chargebee_key"


@pytest.fixture
def hook() -> Iterator[tuple[BackgroundServer, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/hook")
    async def take(request: Request) -> dict[str, bool]:
        received.append((dict(request.headers), await request.body()))
        return {"ok": True}

    with BackgroundServer(app) as server:
        yield server, received


@pytest.fixture
def cb(stripe_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stripe_server.url + "/chargebee", auth=(KEY, ""), timeout=10) as client:
        yield client


def new_invoice(cb: httpx.Client) -> dict[str, Any]:
    made = cb.post(
        "/api/v2/invoices", data={"customer_id": "cb_1", "currency_code": "USD", "charges[amount][0]": "2250"}
    )
    assert made.status_code == 200, made.text
    return made.json()["invoice"]


def test_record_payment_pays_the_invoice_once(cb: httpx.Client) -> None:
    invoice = new_invoice(cb)
    form = {
        "transaction[amount]": "2250",
        "transaction[payment_method]": "card",
        "transaction[id_at_gateway]": "pi_1",
        "transaction[status]": "success",
    }

    first = cb.post(f"/api/v2/invoices/{invoice['id']}/record_payment", data=form)
    again = cb.post(f"/api/v2/invoices/{invoice['id']}/record_payment", data=form)

    assert first.status_code == 200, first.text
    assert first.json()["invoice"]["status"] == "paid" and first.json()["transaction"]["id_at_gateway"] == "pi_1"
    assert again.status_code == 400 and again.json()["api_error_code"] == "invalid_state_for_request"
    assert cb.get(f"/api/v2/invoices/{invoice['id']}").json()["invoice"]["amount_due"] == 0
    assert httpx.get(str(cb.base_url) + "api/v2/invoices/x").status_code == 401


def test_payment_failed_is_sent_with_the_configured_basic_auth(cb: httpx.Client, hook: Any) -> None:
    server, received = hook
    invoice = new_invoice(cb)
    cb.post("/_sandbox/webhook", json={"url": server.url + "/hook", "username": "u", "password": "p"})

    cb.post(f"/_sandbox/invoices/{invoice['id']}/payment_failed", json={"reference_number": "cus_1/pm_1"})

    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    headers, body = received[0]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    event = json.loads(body)
    assert event["event_type"] == "payment_failed"
    assert event["content"]["invoice"]["id"] == invoice["id"]
    assert event["content"]["transaction"]["reference_number"] == "cus_1/pm_1"


# ---- transactions: the payment record_payment made, its refunds, and the writes' idempotency keys ----------------

PAYMENT_FORM = {
    "transaction[amount]": "2250",
    "transaction[payment_method]": "card",
    "transaction[id_at_gateway]": "pi_disputed",
    "transaction[status]": "success",
}


def refund_form(amount: str = "2250") -> dict[str, str]:
    return {"amount": amount, "payment_method": "chargeback", "date": "1767000000", "comment": "Dispute dp_1 lost"}


def paid_invoice(cb: httpx.Client) -> tuple[str, dict[str, Any]]:
    """An invoice paid by a recorded payment: its id, and the payment transaction `record_payment` answered with."""
    invoice = new_invoice(cb)
    recorded = cb.post(f"/api/v2/invoices/{invoice['id']}/record_payment", data=PAYMENT_FORM)
    assert recorded.status_code == 200, recorded.text
    return invoice["id"], recorded.json()["transaction"]


def test_record_payment_answers_its_transaction_and_the_invoice_lists_it(cb: httpx.Client) -> None:
    invoice_id, payment = paid_invoice(cb)

    assert payment["id"].startswith("txn_")
    assert (payment["type"], payment["status"], payment["amount"], payment["payment_method"]) == (
        "payment", "success", 2250, "card",
    )  # fmt: skip
    assert payment["id_at_gateway"] == "pi_disputed" and payment["linked_refunds"] == []
    assert payment["linked_invoices"][0]["invoice_id"] == invoice_id
    listed = cb.get(f"/api/v2/invoices/{invoice_id}/payments").json()
    assert listed == {"list": [{"transaction": payment}]}  # one page: no next_offset
    assert cb.get(f"/api/v2/transactions/{payment['id']}").json() == {"transaction": payment}
    assert cb.get("/api/v2/transactions/txn_unknown").json()["api_error_code"] == "resource_not_found"


def test_an_invoices_payments_come_a_page_at_a_time(cb: httpx.Client) -> None:
    invoice = new_invoice(cb)
    for _ in range(3):
        part = {**PAYMENT_FORM, "transaction[amount]": "750"}
        assert cb.post(f"/api/v2/invoices/{invoice['id']}/record_payment", data=part).status_code == 200

    first = cb.get(f"/api/v2/invoices/{invoice['id']}/payments", params={"limit": "2"}).json()
    rest = cb.get(f"/api/v2/invoices/{invoice['id']}/payments", params={"limit": "2", "offset": first["next_offset"]})

    assert len(first["list"]) == 2 and "next_offset" not in rest.json()
    ids = {entry["transaction"]["id"] for entry in first["list"] + rest.json()["list"]}
    assert len(ids) == 3
    too_many = cb.get(f"/api/v2/invoices/{invoice['id']}/payments", params={"limit": "101"})
    assert too_many.status_code == 400 and too_many.json()["param"] == "limit"


def test_an_offline_refund_is_a_refund_transaction_linked_to_the_payment(cb: httpx.Client) -> None:
    invoice_id, payment = paid_invoice(cb)

    made = cb.post(f"/api/v2/transactions/{payment['id']}/record_refund", data=refund_form("1000"))

    assert made.status_code == 200, made.text
    refund = made.json()["transaction"]
    assert (refund["type"], refund["status"], refund["amount"], refund["payment_method"], refund["date"]) == (
        "refund", "success", 1000, "chargeback", 1767000000,
    )  # fmt: skip
    assert refund["reference_transaction_id"] == payment["id"]
    assert cb.get(f"/api/v2/transactions/{refund['id']}").json()["transaction"] == refund
    [linked] = cb.get(f"/api/v2/transactions/{payment['id']}").json()["transaction"]["linked_refunds"]
    assert linked == {"txn_id": refund["id"], "txn_status": "success", "txn_date": 1767000000, "txn_amount": 1000}
    # The invoice's list shows the payment with its refund; the refund is no payment of the invoice.
    [listed] = cb.get(f"/api/v2/invoices/{invoice_id}/payments").json()["list"]
    assert listed["transaction"]["linked_refunds"] == [linked]
    assert cb.get(f"/api/v2/invoices/{invoice_id}").json()["invoice"]["status"] == "paid"


def test_transactions_are_listed_by_reference_number_and_type(cb: httpx.Client) -> None:
    _, payment = paid_invoice(cb)
    ours = cb.post(
        f"/api/v2/transactions/{payment['id']}/record_refund",
        data={**refund_form("1000"), "reference_number": "dsp_listed"},
    ).json()["transaction"]
    cb.post(f"/api/v2/transactions/{payment['id']}/record_refund", data={**refund_form("500"), "reference_number": "x"})

    def listed(**filters: str) -> list[str]:
        answer = cb.get("/api/v2/transactions", params={f"{k}[is]": v for k, v in filters.items()})
        assert answer.status_code == 200, answer.text
        return [entry["transaction"]["id"] for entry in answer.json()["list"]]

    assert listed(reference_number="dsp_listed", type="refund") == [ours["id"]]
    assert listed(reference_number="dsp_listed", type="payment") == []
    assert listed(reference_number="dsp_nothing") == []
    unknown = cb.get("/api/v2/transactions", params={"amount[is]": "1000"})
    assert unknown.status_code == 400 and "amount" in unknown.json()["message"]


def test_a_refund_is_bounded_by_what_is_left_of_the_payment(cb: httpx.Client) -> None:
    _, payment = paid_invoice(cb)
    refund = f"/api/v2/transactions/{payment['id']}/record_refund"

    assert cb.post(refund, data=refund_form("2000")).status_code == 200
    over = cb.post(refund, data=refund_form("251"))
    rest = cb.post(refund, data={k: v for k, v in refund_form().items() if k != "amount"})  # what is left
    after = cb.post(refund, data=refund_form("1"))

    assert over.status_code == 400 and (over.json()["api_error_code"], over.json()["param"]) == (
        "param_wrong_value", "amount",
    )  # fmt: skip
    assert rest.status_code == 200 and rest.json()["transaction"]["amount"] == 250
    assert after.status_code == 400 and after.json()["api_error_code"] == "invalid_state_for_request"
    no_method = cb.post(refund, data={"amount": "1", "date": "1767000000"})
    assert no_method.status_code == 400 and no_method.json()["param"] == "payment_method"
    of_a_refund = cb.post(f"/api/v2/transactions/{rest.json()['transaction']['id']}/record_refund", data=refund_form())
    assert of_a_refund.status_code == 400 and of_a_refund.json()["api_error_code"] == "invalid_request"


def test_writes_are_idempotent_on_the_chargebee_idempotency_key(cb: httpx.Client) -> None:
    invoice = new_invoice(cb)
    paying = {"chargebee-idempotency-key": "record-back:pay_1"}
    pay = f"/api/v2/invoices/{invoice['id']}/record_payment"

    first = cb.post(pay, data=PAYMENT_FORM, headers=paying)
    again = cb.post(pay, data=PAYMENT_FORM, headers=paying)

    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["chargebee-idempotency-replayed"] == "true"
    assert "chargebee-idempotency-replayed" not in first.headers
    payment = first.json()["transaction"]
    refunding = {"chargebee-idempotency-key": "record-back:pay_1:dispute:dp_1"}
    refund = f"/api/v2/transactions/{payment['id']}/record_refund"
    # A failure the sandbox is told to inject is not kept: the same key goes through afterwards.
    cb.post("/_sandbox/refund_failures", json={"count": 1, "status": 503})
    failed = cb.post(refund, data=refund_form(), headers=refunding)
    made = cb.post(refund, data=refund_form(), headers=refunding)
    replayed = cb.post(refund, data=refund_form(), headers=refunding)
    other_body = cb.post(refund, data=refund_form("1"), headers=refunding)

    assert failed.status_code == 503 and made.status_code == 200
    assert replayed.json() == made.json() and replayed.headers["chargebee-idempotency-replayed"] == "true"
    assert other_body.status_code == 400 and other_body.json()["api_error_code"] == "invalid_request"
    linked = cb.get(f"/api/v2/transactions/{payment['id']}").json()["transaction"]["linked_refunds"]
    assert [r["txn_id"] for r in linked] == [made.json()["transaction"]["id"]]  # one refund for one key


def test_a_refund_keeps_its_reference_number_within_chargebees_limit(cb: httpx.Client) -> None:
    _, payment = paid_invoice(cb)
    refund = f"/api/v2/transactions/{payment['id']}/record_refund"

    made = cb.post(refund, data={**refund_form("1000"), "reference_number": "dp_1"})
    too_long = cb.post(refund, data={**refund_form("1"), "reference_number": "x" * 101})

    assert made.json()["transaction"]["reference_number"] == "dp_1"
    read = cb.get(f"/api/v2/transactions/{made.json()['transaction']['id']}").json()["transaction"]
    assert read["reference_number"] == "dp_1"
    assert too_long.status_code == 400 and too_long.json()["param"] == "reference_number"


def test_a_key_is_kept_for_chargebees_idempotency_window_only(cb: httpx.Client) -> None:
    """Within the window a repeat is answered as the first; once it is over (`/_sandbox/idempotency/expire`), the
    same key and body are a new request: a second refund."""
    _, payment = paid_invoice(cb)
    refunding = {"chargebee-idempotency-key": "record-back:pay_w:dispute:dp_w"}
    refund = f"/api/v2/transactions/{payment['id']}/record_refund"

    first = cb.post(refund, data=refund_form("1000"), headers=refunding)
    replayed = cb.post(refund, data=refund_form("1000"), headers=refunding)
    expired = cb.post("/_sandbox/idempotency/expire").json()
    after_the_window = cb.post(refund, data=refund_form("1000"), headers=refunding)

    assert replayed.headers["chargebee-idempotency-replayed"] == "true"
    assert expired["forgotten"] >= 1
    assert "chargebee-idempotency-replayed" not in after_the_window.headers
    linked = cb.get(f"/api/v2/transactions/{payment['id']}").json()["transaction"]["linked_refunds"]
    assert [r["txn_id"] for r in linked] == [
        first.json()["transaction"]["id"], after_the_window.json()["transaction"]["id"],
    ]  # fmt: skip


def test_the_window_is_thirty_minutes() -> None:
    now = [1_767_000_000.0]
    site = Chargebee(clock=lambda: now[0])
    counter = iter(range(100))

    def write() -> dict[str, Any]:
        return {"n": next(counter)}

    def once() -> tuple[int, dict[str, Any], bool]:
        return site.once("k", "/api/v2/x", {"a": "1"}, FailureSwitch(), write)

    first = once()
    now[0] += 30 * 60 - 1
    within = once()
    now[0] += 1
    after = once()

    assert (first, within) == ((200, {"n": 0}, False), (200, {"n": 0}, True))
    assert after == (200, {"n": 1}, False)
