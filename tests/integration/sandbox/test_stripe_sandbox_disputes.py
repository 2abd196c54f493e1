"""The Stripe sandbox's disputes over real HTTP: a dispute (or an inquiry) opened on a succeeded PaymentIntent's
charge, read, challenged with evidence, closed (accepting the loss) through Stripe's API or decided by the network,
each sending its event signed to the endpoints that take it, and kept across a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration

Received = list[tuple[str, dict[str, str], bytes]]


@pytest.fixture
def hook() -> Iterator[tuple[BackgroundServer, Received]]:
    """An endpoint that records what it is sent, by path."""
    received: Received = []
    app = FastAPI()

    @app.post("/{path}")
    async def take(path: str, request: Request) -> dict[str, bool]:
        received.append((path, dict(request.headers), await request.body()))
        return {"received": True}

    with BackgroundServer(app) as server:
        yield server, received


def succeeded_intent(api: httpx.Client, card: str = "pm_card_visa", amount: int = 2250) -> dict[str, Any]:
    data = {"amount": str(amount), "currency": "usd", "payment_method": card, "confirm": "true"}
    return api.post("/v1/payment_intents", data={**data, "metadata[payment_id]": "12345_pay_1"}).json()


def wait_for(received: Received, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(received) >= count


def test_a_dispute_is_opened_read_and_closed_as_lost_with_its_events_signed(
    stripe_server: BackgroundServer, stripe_api: httpx.Client, hook: Any
) -> None:
    server, received = hook
    every = stripe_api.post(
        "/v1/webhook_endpoints",
        data={"url": server.url + "/every", "enabled_events[]": ["charge.dispute.created", "charge.dispute.closed"]},
    ).json()
    stripe_api.post("/v1/webhook_endpoints", data={"url": server.url + "/all", "enabled_events[]": "*"})
    stripe_api.post("/v1/webhook_endpoints", data={"url": server.url + "/invoices", "enabled_events[]": "invoice.paid"})
    intent = succeeded_intent(stripe_api)

    opened = httpx.post(stripe_server.url + "/_sandbox/disputes", data={"payment_intent": intent["id"]}).json()
    read = stripe_api.get(f"/v1/disputes/{opened['id']}").json()
    wait_for(received, 2)
    closed = stripe_api.post(f"/v1/disputes/{opened['id']}/close")
    wait_for(received, 4)

    assert opened["id"].startswith("dp_") and opened == read
    expected = {
        "object": "dispute",
        "amount": 2250,
        "currency": "usd",
        "charge": intent["latest_charge"],
        "payment_intent": intent["id"],
        "reason": "fraudulent",
        "status": "needs_response",
        "livemode": False,
        "metadata": {},
    }
    assert {name: opened[name] for name in expected} == expected
    assert stripe_api.get(f"/v1/charges/{intent['latest_charge']}").json()["disputed"] is True
    assert closed.status_code == 200 and closed.json()["status"] == "lost"
    assert stripe_api.get(f"/v1/disputes/{opened['id']}").json()["status"] == "lost"
    assert sorted(path for path, _, _ in received) == ["all", "all", "every", "every"]
    events = [json.loads(body) for path, _, body in received if path == "every"]
    assert [e["type"] for e in events] == ["charge.dispute.created", "charge.dispute.closed"]
    assert [e["data"]["object"]["status"] for e in events] == ["needs_response", "lost"]
    headers, body = next((h, b) for path, h, b in received if path == "every")
    stamp, signature = (part.split("=", 1)[1] for part in headers["stripe-signature"].split(","))
    assert signature == hmac.new(every["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_closing_twice_and_disputes_on_what_cannot_be_disputed_are_refused(
    stripe_server: BackgroundServer, stripe_api: httpx.Client
) -> None:
    intent = succeeded_intent(stripe_api)
    declined = stripe_api.post(
        "/v1/payment_intents",
        data={"amount": "2250", "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": "true"},
    ).json()["error"]["payment_intent"]
    sandbox = stripe_server.url + "/_sandbox/disputes"

    # JSON works as well as a form, with an amount and a reason.
    opened = httpx.post(sandbox, json={"payment_intent": intent["id"], "amount": 1000, "reason": "duplicate"}).json()
    first = stripe_api.post(f"/v1/disputes/{opened['id']}/close")
    again = stripe_api.post(f"/v1/disputes/{opened['id']}/close")
    refused = [
        httpx.post(sandbox, data={"payment_intent": intent["id"]}),  # the charge is disputed already
        httpx.post(sandbox, data={"payment_intent": declined["id"]}),  # nothing was charged
        httpx.post(sandbox, data={"payment_intent": "pi_unknown"}),
        httpx.post(sandbox, data={"payment_intent": succeeded_intent(stripe_api)["id"], "amount": "9999"}),
        httpx.post(sandbox, data={"payment_intent": succeeded_intent(stripe_api)["id"], "reason": "bored"}),
    ]
    unauthenticated = httpx.get(stripe_server.url + f"/v1/disputes/{opened['id']}")
    unknown = stripe_api.get("/v1/disputes/dp_unknown")

    assert (opened["amount"], opened["reason"], first.json()["status"]) == (1000, "duplicate", "lost")
    assert again.status_code == 400 and "already closed" in again.json()["error"]["message"]
    assert [r.status_code for r in refused] == [400] * 5
    assert refused[0].json()["error"]["code"] == "charge_disputed"
    assert (unauthenticated.status_code, unknown.status_code) == (401, 404)


def test_evidence_submitted_puts_the_dispute_under_review_and_the_networks_decision_closes_it(
    stripe_server: BackgroundServer, stripe_api: httpx.Client, hook: Any
) -> None:
    server, received = hook
    stripe_api.post("/v1/webhook_endpoints", data={"url": server.url + "/all", "enabled_events[]": "*"})
    sandbox = stripe_server.url + "/_sandbox/disputes"
    dispute = httpx.post(sandbox, data={"payment_intent": succeeded_intent(stripe_api)["id"]}).json()
    inquiry = httpx.post(sandbox, json={"payment_intent": succeeded_intent(stripe_api)["id"], "inquiry": True}).json()

    kept = stripe_api.post(f"/v1/disputes/{dispute['id']}", data={"evidence[uncategorized_text]": "Delivered."})
    submitted = stripe_api.post(f"/v1/disputes/{dispute['id']}", data={"submit": "true"})
    late_evidence = stripe_api.post(f"/v1/disputes/{dispute['id']}", data={"evidence[receipt]": "file_1"})
    unknown_field = stripe_api.post(f"/v1/disputes/{inquiry['id']}", data={"evidence[mood]": "calm"})
    won = httpx.post(f"{sandbox}/{dispute['id']}/decide", data={"outcome": "won"}).json()
    decided_again = httpx.post(f"{sandbox}/{dispute['id']}/decide", data={"outcome": "lost"})
    escalated = httpx.post(f"{sandbox}/{inquiry['id']}/decide", data={"outcome": "lost"}).json()
    no_outcome = httpx.post(f"{sandbox}/{inquiry['id']}/decide", data={"outcome": "maybe"})
    wait_for(received, 5)

    assert (kept.json()["status"], kept.json()["evidence"]["uncategorized_text"]) == ("needs_response", "Delivered.")
    assert submitted.json()["status"] == "under_review"
    assert submitted.json()["evidence_details"]["has_evidence"] is True
    assert submitted.json()["evidence_details"]["submission_count"] == 1
    assert [r.status_code for r in (late_evidence, unknown_field, decided_again, no_outcome)] == [400] * 4
    assert inquiry["status"] == "warning_needs_response"
    assert (won["status"], escalated["status"]) == ("won", "needs_response")
    events = [json.loads(body) for _, _, body in received]
    told = [(e["type"], e["data"]["object"]["id"], e["data"]["object"]["status"]) for e in events]
    # Each event a copy of the dispute as it was then; delivered side by side, so in any order (as Stripe's).
    assert sorted(told) == sorted(
        [
            ("charge.dispute.created", dispute["id"], "needs_response"),
            ("charge.dispute.created", inquiry["id"], "warning_needs_response"),
            ("charge.dispute.updated", dispute["id"], "under_review"),
            ("charge.dispute.closed", dispute["id"], "won"),
            ("charge.dispute.updated", inquiry["id"], "needs_response"),
        ]
    )


def test_a_state_dir_keeps_disputes_across_a_restart(tmp_path: Path, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    data = {"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    with BackgroundServer(stripe.create_app(tmp_path)) as before:
        intent = httpx.post(before.url + "/v1/payment_intents", data=data, headers=headers).json()
        opened = httpx.post(before.url + "/_sandbox/disputes", data={"payment_intent": intent["id"]}).json()

    with BackgroundServer(stripe.create_app(tmp_path)) as after:
        kept = httpx.get(after.url + f"/v1/disputes/{opened['id']}", headers=headers)
        closed = httpx.post(after.url + f"/v1/disputes/{opened['id']}/close", headers=headers)
        again = httpx.post(after.url + "/_sandbox/disputes", data={"payment_intent": intent["id"]})

    assert kept.json() == opened
    assert closed.json()["status"] == "lost"
    assert again.json()["error"]["code"] == "charge_disputed"


def upload_pdf(api: httpx.Client) -> dict[str, Any]:
    part = {"file": ("receipt.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")}
    return api.post("/v1/files", files=part, data={"purpose": "dispute_evidence"}).json()


def test_file_evidence_names_an_uploaded_file_and_is_submitted_with_the_rest(
    stripe_server: BackgroundServer, stripe_api: httpx.Client
) -> None:
    receipt = upload_pdf(stripe_api)
    dispute = httpx.post(
        stripe_server.url + "/_sandbox/disputes", data={"payment_intent": succeeded_intent(stripe_api)["id"]}
    ).json()

    submitted = stripe_api.post(
        f"/v1/disputes/{dispute['id']}",
        data={"evidence[receipt]": receipt["id"], "evidence[uncategorized_text]": "Delivered.", "submit": "true"},
    )

    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "under_review"
    evidence = stripe_api.get(f"/v1/disputes/{dispute['id']}").json()["evidence"]
    assert (evidence["receipt"], evidence["uncategorized_text"]) == (receipt["id"], "Delivered.")
    assert evidence["shipping_documentation"] is None


def test_file_evidence_naming_no_file_of_the_account_is_refused_and_nothing_is_kept(
    stripe_server: BackgroundServer, stripe_api: httpx.Client
) -> None:
    other_key = {"Authorization": "Bearer sk_test_sandbox_tests_0002"}
    with httpx.Client(base_url=stripe_server.url, headers=other_key) as another_account:
        theirs = upload_pdf(another_account)
    dispute = httpx.post(
        stripe_server.url + "/_sandbox/disputes", data={"payment_intent": succeeded_intent(stripe_api)["id"]}
    ).json()

    refused = [
        stripe_api.post(
            f"/v1/disputes/{dispute['id']}",
            data={"evidence[uncategorized_text]": "Delivered.", f"evidence[{field}]": file_id, "submit": "true"},
        )
        for field, file_id in (("receipt", "file_unknown"), ("customer_communication", theirs["id"]))
    ]

    assert [r.status_code for r in refused] == [400, 400]
    assert [(r.json()["error"]["code"], r.json()["error"]["param"], r.json()["error"]["message"]) for r in refused] == [
        ("resource_missing", "evidence[receipt]", "No such file upload: 'file_unknown'"),
        ("resource_missing", "evidence[customer_communication]", f"No such file upload: '{theirs['id']}'"),
    ]
    after = stripe_api.get(f"/v1/disputes/{dispute['id']}").json()
    assert after["status"] == "needs_response"
    assert after["evidence"] == dispute["evidence"]
    assert after["evidence_details"]["submission_count"] == 0
