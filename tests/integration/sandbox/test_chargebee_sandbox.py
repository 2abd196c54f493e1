"""The Chargebee sandbox (under the Stripe sandbox's `/chargebee`) over real HTTP: invoices, record_payment,
and payment_failed webhooks with the configured basic auth."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

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
