"""The Stripe sandbox's billing side over real HTTP: invoice items, invoices, pay (charged or out of band),
void, webhook endpoints and events signed as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration

# The version the sandbox's invoices are stored in (and the services pin); unpinned requests get the account's
# default, 2025-03-31.basil, whose invoices have no `charge`.
PINNED = {"Stripe-Version": "2024-06-20"}


@pytest.fixture
def hook() -> Iterator[tuple[BackgroundServer, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/hook")
    async def take(request: Request) -> dict[str, bool]:
        received.append((dict(request.headers), await request.body()))
        return {"received": True}

    with BackgroundServer(app) as server:
        yield server, received


def open_invoice(api: httpx.Client, card: str, amount: int = 2250) -> dict[str, Any]:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    pm = api.post(f"/v1/payment_methods/{card}/attach", data={"customer": customer["id"]}).json()
    item = api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": str(amount), "currency": "usd"})
    assert item.status_code == 200, item.text
    invoice = api.post(
        "/v1/invoices",
        data={
            "customer": customer["id"],
            "default_payment_method": pm["id"],
            "pending_invoice_items_behavior": "include",
        },
    ).json()
    assert invoice["status"] == "draft" and invoice["amount_due"] == amount
    finalized = api.post(f"/v1/invoices/{invoice['id']}/finalize").json()
    assert finalized["status"] == "open"
    return finalized


def wait_for(received: list[Any], count: int) -> None:
    deadline = time.monotonic() + 5
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(received) >= count


def test_a_declined_invoice_payment_sends_a_signed_invoice_payment_failed(stripe_api: httpx.Client, hook: Any) -> None:
    server, received = hook
    endpoint = stripe_api.post(
        "/v1/webhook_endpoints", data={"url": server.url + "/hook", "enabled_events[]": "invoice.payment_failed"}
    ).json()
    invoice = open_invoice(stripe_api, "pm_card_chargeDeclinedInsufficientFunds")

    paid = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay")

    assert paid.status_code == 402
    assert paid.json()["error"]["decline_code"] == "insufficient_funds"
    wait_for(received, 1)
    headers, body = received[0]
    stamp, signature = (part.split("=", 1)[1] for part in headers["stripe-signature"].split(","))
    expected = hmac.new(endpoint["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature == expected
    event = httpx.Response(200, content=body).json()
    assert event["type"] == "invoice.payment_failed"
    assert event["data"]["object"]["id"] == invoice["id"]
    assert event["data"]["object"]["attempt_count"] == 1
    reread = stripe_api.get(f"/v1/invoices/{invoice['id']}", params={"expand[]": "charge"}, headers=PINNED).json()
    assert reread["status"] == "open"
    assert reread["charge"]["outcome"]["reason"] == "insufficient_funds"
    assert reread["charge"]["payment_method_details"]["card"]["network"] == "visa"


def test_paid_out_of_band_marks_the_invoice_paid_once_per_idempotency_key(stripe_api: httpx.Client) -> None:
    invoice = open_invoice(stripe_api, "pm_card_visa")
    headers = {"Idempotency-Key": "record-back:1"}

    first = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}, headers=headers)
    again = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}, headers=headers)
    other = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"})

    assert first.status_code == 200
    assert (first.json()["status"], first.json()["paid_out_of_band"], first.json()["amount_remaining"]) == (
        "paid",
        True,
        0,
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "invoice_already_paid"
    assert stripe_api.get(f"/v1/invoices/{invoice['id']}", headers=PINNED).json()["charge"] is None  # nothing charged


def test_pay_failures_answer_500_then_pay(stripe_server: BackgroundServer, stripe_api: httpx.Client) -> None:
    invoice = open_invoice(stripe_api, "pm_card_visa")
    httpx.post(stripe_server.url + "/_sandbox/invoices/pay_failures", json={"count": 1})

    failed = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"})
    paid = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"})

    assert failed.status_code == 500
    assert paid.json()["status"] == "paid"


def test_void_sends_invoice_voided_and_resend_replays_it(
    stripe_server: BackgroundServer, stripe_api: httpx.Client, hook: Any
) -> None:
    server, received = hook
    stripe_api.post("/v1/webhook_endpoints", data={"url": server.url + "/hook", "enabled_events[]": "*"})
    invoice = open_invoice(stripe_api, "pm_card_visa")

    voided = stripe_api.post(f"/v1/invoices/{invoice['id']}/void").json()
    wait_for(received, 1)
    events = httpx.get(stripe_server.url + "/_sandbox/events").json()["events"]
    replay = httpx.post(stripe_server.url + f"/_sandbox/events/{events[-1]['id']}/resend").json()

    assert voided["status"] == "void"
    assert events[-1]["type"] == "invoice.voided"
    assert replay == {"statuses": [200]}
    assert received[0][1] == received[1][1]  # the same event, signed again


def test_a_decline_fault_fails_the_invoice_payment_once_and_endpoints_take_a_new_url(
    stripe_server: BackgroundServer, stripe_api: httpx.Client, hook: Any
) -> None:
    server, received = hook
    endpoint = stripe_api.post(
        "/v1/webhook_endpoints", data={"url": "http://127.0.0.1:9/nowhere", "enabled_events[]": "*"}
    ).json()
    updated = stripe_api.post(f"/v1/webhook_endpoints/{endpoint['id']}", data={"url": server.url + "/hook"}).json()
    invoice = open_invoice(stripe_api, "pm_card_visa")
    httpx.post(
        stripe_server.url + "/_sandbox/faults",
        json={
            "payment_method": invoice["default_payment_method"],
            "mode": "decline",
            "decline_code": "insufficient_funds",
        },
    )

    declined = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay")
    paid = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay")

    assert (updated["secret"], updated["url"]) == (endpoint["secret"], server.url + "/hook")
    assert declined.status_code == 402
    assert paid.json()["status"] == "paid" and paid.json()["paid_out_of_band"] is False
    wait_for(received, 2)
    types = [httpx.Response(200, content=body).json()["type"] for _, body in received]
    assert types == ["invoice.payment_failed", "invoice.paid"]


def test_an_unpinned_request_is_served_as_the_accounts_newer_default_version(stripe_api: httpx.Client) -> None:
    invoice = open_invoice(stripe_api, "pm_card_chargeDeclinedInsufficientFunds")
    assert stripe_api.post(f"/v1/invoices/{invoice['id']}/pay").status_code == 402
    url = f"/v1/invoices/{invoice['id']}"

    unpinned = stripe_api.get(url)
    expanded = stripe_api.get(url, params=[("expand[]", "charge"), ("expand[]", "customer")])
    pinned = stripe_api.get(url, params=[("expand[]", "charge"), ("expand[]", "customer")], headers=PINNED)

    # 2025-03-31.basil: no `charge` nor `payment_intent` on an invoice, and expanding one is Stripe's 400.
    assert unpinned.headers["Stripe-Version"] == "2025-03-31.basil"
    assert unpinned.json()["status"] == "open"
    assert "charge" not in unpinned.json() and "payment_intent" not in unpinned.json()
    assert expanded.status_code == 400
    assert expanded.json()["error"]["message"] == "This property cannot be expanded (charge)."
    # Pinned to 2024-06-20: the invoice as stored, its failed charge expanded.
    assert pinned.status_code == 200 and pinned.headers["Stripe-Version"] == "2024-06-20"
    assert pinned.json()["charge"]["outcome"]["reason"] == "insufficient_funds"
    assert pinned.json()["payment_intent"] == pinned.json()["charge"]["payment_intent"]


def test_invoice_answers_to_posts_follow_the_requests_version(stripe_api: httpx.Client) -> None:
    invoice = open_invoice(stripe_api, "pm_card_visa")  # finalized unpinned: answered as basil
    other = open_invoice(stripe_api, "pm_card_visa")

    unpinned = stripe_api.post(f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"})
    pinned = stripe_api.post(f"/v1/invoices/{other['id']}/pay", data={"paid_out_of_band": "true"}, headers=PINNED)

    assert "charge" not in invoice and "payment_intent" not in invoice
    assert unpinned.status_code == 200 and "charge" not in unpinned.json()
    assert (pinned.json()["status"], pinned.json()["charge"], pinned.json()["payment_intent"]) == ("paid", None, None)


def test_a_malformed_stripe_version_is_refused(stripe_api: httpx.Client) -> None:
    answer = stripe_api.get("/v1/invoices/in_missing", headers={"Stripe-Version": "latest please"})

    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Invalid Stripe API version: latest please"


def test_an_event_not_answered_2xx_is_delivered_again_until_taken_and_a_resend_is_not(
    stripe_server: BackgroundServer, stripe_api: httpx.Client
) -> None:
    """As Stripe retries an undelivered event on its own, at the sandbox's redelivery delays (here 0.2 s); a
    `resend` is one delivery."""
    answers = [503, 500, 200, 503]
    received: list[bytes] = []
    app = FastAPI()

    @app.post("/hook")
    async def take(request: Request) -> Any:
        received.append(await request.body())
        return JSONResponse({"taken": answers[0] == 200}, status_code=answers.pop(0))

    set_delays = httpx.post(stripe_server.url + "/_sandbox/webhooks/redelivery", json={"seconds": [0.2, 0.2, 0.2]})
    assert set_delays.json() == {"seconds": [0.2, 0.2, 0.2]}
    refused = httpx.post(stripe_server.url + "/_sandbox/webhooks/redelivery", json={"seconds": [0]})
    assert refused.status_code == 422 and "more than 0" in refused.text
    try:
        with BackgroundServer(app) as server:
            stripe_api.post("/v1/webhook_endpoints", data={"url": server.url + "/hook", "enabled_events[]": "*"})
            invoice = open_invoice(stripe_api, "pm_card_visa")
            stripe_api.post(f"/v1/invoices/{invoice['id']}/void")
            wait_for(received, 3)
            time.sleep(0.6)  # no fourth: the third was taken
            event_id = httpx.Response(200, content=received[0]).json()["id"]
            resent = httpx.post(stripe_server.url + f"/_sandbox/events/{event_id}/resend").json()
            time.sleep(0.6)
            deliveries = httpx.get(stripe_server.url + "/_sandbox/events").json()["deliveries"]
    finally:
        httpx.post(stripe_server.url + "/_sandbox/invoices/reset")

    assert len(set(received[:3])) == 1 and len(received) == 4  # the same event each time; the resend once
    assert [d["status"] for d in deliveries if d["event"] == event_id] == [503, 500, 200, 503]
    assert resent == {"statuses": [503]}
    default = httpx.get(stripe_server.url + "/_sandbox/webhooks/redelivery").json()
    assert default == {"seconds": [60.0, 300.0, 900.0]}
