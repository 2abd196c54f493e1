"""The Recurly sandbox's refunds over real HTTP (under the Stripe sandbox's `/recurly`): a paid charge invoice refunded
by amount outside Recurly (what a lost dispute's refund record asks), each refund a credit invoice with its refund
transaction, at most what the invoice can still refund, idempotent on `Idempotency-Key` until the window is ended,
the related invoices that link them (newest first, in pages), and the bodies the sandbox does not take refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration
ACCEPT = "application/vnd.recurly.v2021-02-25"


@pytest.fixture
def recurly(stripe_server: BackgroundServer) -> Iterator[httpx.Client]:
    base = stripe_server.url + "/recurly"
    with httpx.Client(base_url=base, auth=("recurly_private_key", ""), headers={"Accept": ACCEPT}, timeout=10) as c:
        yield c


def paid_invoice(recurly: httpx.Client, amount: int = 2250, *, pay: bool = True) -> dict[str, Any]:
    invoice = recurly.post("/_sandbox/invoices", json={"account_code": "acct-9", "amount": amount}).json()
    if pay:
        assert recurly.put(f"/invoices/{invoice['id']}/mark_successful").status_code == 200
    return dict(recurly.get(f"/invoices/{invoice['id']}").json())


def refund(amount: float | None = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "amount", "external_refund": {"payment_method": "other"}, **more}
    if amount is not None:
        body["amount"] = amount
    return body


def test_a_paid_invoice_is_refunded_outside_recurly_as_a_credit_invoice(recurly: httpx.Client) -> None:
    invoice = paid_invoice(recurly)
    assert (invoice["refundable_amount"], invoice["paid"]) == (22.5, 22.5)

    made = recurly.post(
        f"/invoices/{invoice['id']}/refund",
        json=refund(
            10.0,
            credit_customer_notes="Dispute dp_1 lost: fraudulent",
            external_refund={
                "payment_method": "other",
                "description": "Dispute dp_1 lost: fraudulent",
                "refunded_at": "2026-02-20T09:30:00Z",
            },
        ),
    )

    assert made.status_code == 200, made.text
    credit = made.json()
    assert (credit["type"], credit["origin"], credit["state"]) == ("credit", "refund", "closed")
    assert (credit["previous_invoice_id"], credit["account"]["code"]) == (invoice["id"], "acct-9")
    assert (credit["object"], credit["currency"]) == ("invoice", "USD")
    assert (credit["total"], credit["customer_notes"]) == (-10.0, "Dispute dp_1 lost: fraudulent")
    assert int(credit["number"]) > int(invoice["number"])
    [transaction] = credit["transactions"]
    assert (transaction["type"], transaction["status"], transaction["amount"]) == ("refund", "success", 10.0)
    assert (transaction["payment_method"], transaction["description"]) == (
        {"object": "other"}, "Dispute dp_1 lost: fraudulent",
    )  # fmt: skip
    assert transaction["collected_at"] == "2026-02-20T09:30:00Z"
    assert recurly.get(f"/invoices/{credit['id']}").json() == credit
    after = recurly.get(f"/invoices/{invoice['id']}").json()
    assert (after["refundable_amount"], after["state"], after["paid"]) == (12.5, "paid", 22.5)


def test_an_invoice_is_refunded_at_most_what_it_can_still_refund(recurly: httpx.Client) -> None:
    invoice = paid_invoice(recurly)

    first = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(15.0))
    over = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(7.51))
    rest = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund())  # no amount: all that is left
    none_left = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund())

    assert first.status_code == 200 and rest.status_code == 200 and rest.json()["total"] == -7.5
    assert over.status_code == 422
    assert over.json()["error"] == {
        "type": "validation",
        "message": "Amount cannot exceed the refundable amount of 7.50",
        "params": [{"param": "amount", "message": "Amount cannot exceed the refundable amount of 7.50"}],
    }
    assert none_left.status_code == 422
    assert recurly.get(f"/invoices/{invoice['id']}").json()["refundable_amount"] == 0


def test_an_unpaid_or_unknown_invoice_is_not_refunded(recurly: httpx.Client) -> None:
    unpaid = paid_invoice(recurly, pay=False)

    refused = recurly.post(f"/invoices/{unpaid['id']}/refund", json=refund(1.0))
    unknown = recurly.post("/invoices/nosuchinvoice/refund", json=refund(1.0))

    assert refused.status_code == 422 and refused.json()["error"]["type"] == "validation"
    assert "only a paid one is refunded" in refused.json()["error"]["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"


def test_a_refund_is_made_once_per_idempotency_key_until_the_window_ends(recurly: httpx.Client) -> None:
    invoice, other = paid_invoice(recurly), paid_invoice(recurly)
    key = {"Idempotency-Key": "record-back:12345_pay_1:dispute:dp_1"}

    first = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(5.0), headers=key)
    again = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(5.0), headers=key)
    elsewhere = recurly.post(f"/invoices/{other['id']}/refund", json=refund(5.0), headers=key)
    marked = recurly.put(f"/invoices/{other['id']}/mark_successful", headers=key)

    assert first.status_code == 200 and again.json() == first.json()
    assert elsewhere.status_code == 400 and marked.status_code == 400
    assert len(recurly.get(f"/invoices/{invoice['id']}/related_invoices").json()["data"]) == 1

    assert recurly.post("/_sandbox/idempotency/expire").json() == {"forgotten": 1}
    later = recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(5.0), headers=key)

    assert later.status_code == 200 and later.json()["id"] != first.json()["id"]
    assert recurly.get(f"/invoices/{invoice['id']}").json()["refundable_amount"] == 12.5


def test_related_invoices_link_a_charge_invoice_and_its_credit_invoices_in_pages(recurly: httpx.Client) -> None:
    invoice, other = paid_invoice(recurly), paid_invoice(recurly)
    made = [recurly.post(f"/invoices/{invoice['id']}/refund", json=refund(1.0)).json()["id"] for _ in range(3)]
    recurly.post(f"/invoices/{other['id']}/refund", json=refund(1.0))

    listed = recurly.get(f"/invoices/{invoice['id']}/related_invoices").json()
    page = recurly.get(f"/invoices/{invoice['id']}/related_invoices", params={"limit": "2"}).json()
    rest = recurly.get(page["next"]).json()  # `next` is the next page's path under the API base
    back = recurly.get(f"/invoices/{made[0]}/related_invoices").json()

    assert (listed["object"], listed["has_more"], listed["next"]) == ("list", False, None)
    assert [credit["id"] for credit in listed["data"]] == list(reversed(made))
    assert (len(page["data"]), page["has_more"], [c["id"] for c in rest["data"]], rest["has_more"]) == (
        2, True, [made[0]], False,
    )  # fmt: skip
    assert [(i["id"], i["type"]) for i in back["data"]] == [(invoice["id"], "charge")]
    assert recurly.get(f"/invoices/{paid_invoice(recurly)['id']}/related_invoices").json()["data"] == []
    assert recurly.get(f"/invoices/{invoice['id']}/related_invoices", headers={"Accept": "*/*"}).status_code == 406


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "line_items", "external_refund": {"payment_method": "other"}}, "type"),
        ({"type": "percentage", "external_refund": {"payment_method": "other"}}, "type"),
        ({"type": "amount", "amount": 1.0}, "external_refund"),
        ({"type": "amount", "external_refund": {"payment_method": "chargeback"}}, "external_refund.payment_method"),
        ({"type": "amount", "external_refund": {"description": "no method"}}, "external_refund.payment_method"),
        (
            refund(1.0, external_refund={"payment_method": "other", "description": "x" * 51}),
            "external_refund.description",
        ),
        (refund(1.001), "amount"),
        (refund(-1.0), "amount"),
        (refund(1.0, refund_method="all_credit"), "refund_method"),
    ],
)
def test_what_the_sandbox_does_not_take_is_refused(recurly: httpx.Client, body: dict[str, Any], param: str) -> None:
    invoice = paid_invoice(recurly)

    refused = recurly.post(f"/invoices/{invoice['id']}/refund", json=body)

    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["params"][0]["param"]) == ("validation", param)
    assert recurly.get(f"/invoices/{invoice['id']}").json()["refundable_amount"] == 22.5
