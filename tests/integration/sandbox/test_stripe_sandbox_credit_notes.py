"""The Stripe sandbox's credit notes over real HTTP: a paid invoice credited out of band (what a lost dispute's
refund record issues), at most what it can still be credited, listed by invoice in Stripe's list shape, read by id,
idempotent on `Idempotency-Key`, and refused where the sandbox does not model Stripe's credit (unpaid invoices,
refunds, balance credits)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PINNED = {"Stripe-Version": "2024-06-20"}


def paid_invoice(api: httpx.Client, amount: int = 2250, *, pay: bool = True) -> dict[str, Any]:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": str(amount), "currency": "usd"})
    invoice = api.post(
        "/v1/invoices", data={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
    ).json()
    api.post(f"/v1/invoices/{invoice['id']}/finalize")
    if pay:
        api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"})
    return dict(api.get(f"/v1/invoices/{invoice['id']}", headers=PINNED).json())


def credit(invoice_id: str, amount: int, **more: str) -> dict[str, str]:
    return {"invoice": invoice_id, "amount": str(amount), "out_of_band_amount": str(amount), **more}


def test_a_paid_invoice_is_credited_out_of_band_and_counts_it(stripe_api: httpx.Client) -> None:
    invoice = paid_invoice(stripe_api)
    assert (invoice["post_payment_credit_notes_amount"], invoice["pre_payment_credit_notes_amount"]) == (0, 0)

    made = stripe_api.post(
        "/v1/credit_notes",
        data=credit(
            invoice["id"],
            1000,
            reason="fraudulent",
            memo="Dispute dp_1 lost: fraudulent",
            **{"metadata[dispute_id]": "dp_1", "metadata[payment_id]": "12345_pay_1"},
        ),
    )

    assert made.status_code == 200, made.text
    note = made.json()
    assert note["id"].startswith("cn_") and note["object"] == "credit_note"
    assert (note["invoice"], note["customer"], note["currency"]) == (invoice["id"], invoice["customer"], "usd")
    assert (note["amount"], note["out_of_band_amount"], note["total"], note["type"], note["status"]) == (
        1000, 1000, 1000, "post_payment", "issued",
    )  # fmt: skip
    assert (note["reason"], note["memo"]) == ("fraudulent", "Dispute dp_1 lost: fraudulent")
    assert note["metadata"] == {"dispute_id": "dp_1", "payment_id": "12345_pay_1"}
    assert note["number"] == f"{invoice['number']}-CN-01"
    assert stripe_api.get(f"/v1/credit_notes/{note['id']}").json() == note
    after = stripe_api.get(f"/v1/invoices/{invoice['id']}", headers=PINNED).json()
    assert (after["post_payment_credit_notes_amount"], after["amount_paid"], after["status"]) == (1000, 2250, "paid")


def test_an_invoice_is_credited_at_most_what_it_was_paid_less_its_credit_notes(stripe_api: httpx.Client) -> None:
    invoice = paid_invoice(stripe_api)

    first = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 1500))
    over = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 751))
    rest = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 750))

    assert first.status_code == 200 and rest.status_code == 200
    assert over.status_code == 400
    error = over.json()["error"]
    assert (error["type"], error["param"], "code" in error) == ("invalid_request_error", "amount", False)
    assert "(750)" in error["message"]
    assert stripe_api.get(f"/v1/invoices/{invoice['id']}").json()["post_payment_credit_notes_amount"] == 2250


def test_credit_notes_are_listed_by_invoice_newest_first(stripe_api: httpx.Client) -> None:
    invoice, other = paid_invoice(stripe_api), paid_invoice(stripe_api)
    ids = [stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 100)).json()["id"] for _ in range(3)]
    stripe_api.post("/v1/credit_notes", data=credit(other["id"], 100))

    listed = stripe_api.get("/v1/credit_notes", params={"invoice": invoice["id"]}).json()
    page = stripe_api.get("/v1/credit_notes", params={"invoice": invoice["id"], "limit": "2"}).json()
    rest = stripe_api.get(
        "/v1/credit_notes", params={"invoice": invoice["id"], "limit": "2", "starting_after": page["data"][-1]["id"]}
    ).json()

    assert (listed["object"], listed["url"], listed["has_more"]) == ("list", "/v1/credit_notes", False)
    assert [note["id"] for note in listed["data"]] == list(reversed(ids))
    assert (len(page["data"]), page["has_more"], [n["id"] for n in rest["data"]], rest["has_more"]) == (
        2, True, [ids[0]], False,
    )  # fmt: skip
    assert stripe_api.get("/v1/credit_notes/cn_unknown").status_code == 404


def test_a_credit_note_is_issued_once_per_idempotency_key(stripe_api: httpx.Client) -> None:
    invoice = paid_invoice(stripe_api)
    key = {"Idempotency-Key": "record-back:12345_pay_1:dispute:dp_1"}

    first = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 1000), headers=key)
    again = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 1000), headers=key)
    other = stripe_api.post("/v1/credit_notes", data=credit(invoice["id"], 999), headers=key)

    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert len(stripe_api.get("/v1/credit_notes", params={"invoice": invoice["id"]}).json()["data"]) == 1


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"amount": "1000", "out_of_band_amount": "900"}, "out_of_band_amount"),
        ({"amount": "1000"}, "out_of_band_amount"),
        ({"out_of_band_amount": "1000"}, "amount"),
        ({"amount": "1000", "out_of_band_amount": "1000", "reason": "chargeback"}, "reason"),
        ({"amount": "1000", "refund_amount": "1000"}, "refund_amount"),
        ({"amount": "1000", "out_of_band_amount": "1000", "colour": "red"}, "colour"),
    ],
)
def test_what_the_sandbox_does_not_take_is_refused(stripe_api: httpx.Client, form: dict[str, str], param: str) -> None:
    invoice = paid_invoice(stripe_api)

    refused = stripe_api.post("/v1/credit_notes", data={"invoice": invoice["id"], **form})

    assert refused.status_code == 400 and refused.json()["error"]["param"] == param


def test_an_unpaid_or_unknown_invoice_is_not_credited(stripe_api: httpx.Client) -> None:
    open_invoice = paid_invoice(stripe_api, pay=False)

    unpaid = stripe_api.post("/v1/credit_notes", data=credit(open_invoice["id"], 100))
    unknown = stripe_api.post("/v1/credit_notes", data=credit("in_unknown", 100))
    without = stripe_api.post("/v1/credit_notes", data={"amount": "100", "out_of_band_amount": "100"})

    assert unpaid.status_code == 400 and unpaid.json()["error"]["param"] == "invoice"
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "resource_missing"
    assert without.status_code == 400 and without.json()["error"]["code"] == "parameter_missing"
