"""The Recurly sandbox (under the Stripe sandbox's `/recurly`) over real HTTP: API v2021-02-25's version and auth
checks, a declined payment's signed notification and transaction, mark_successful with idempotency keys and
injected failures, the paid and failed controls, and resending a notification signed otherwise."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from recovery_sandbox.recurly import notifications
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration
ACCEPT = "application/vnd.recurly.v2021-02-25"
SECRET = "recurly_webhook_secret_1"
FAILURE = {
    "gateway_token": "cus_R1/pm_R1",
    "gateway_id": "gw7stripe001",
    "gateway_reference": "ch_3Declined",
    "status_code": "insufficient_funds",
    "status_message": "Insufficient funds.",
    "card_type": "MasterCard",
    "last_four": "4444",
    "exp_month": 11,
    "exp_year": 2031,
    "funding_source": "debit",
}


class Receiver:
    """The merchant's notification endpoint on loopback: keeps each (headers, body) and answers `status`, after
    `delay` seconds."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status, self.delay = 200, 0.0
        self.app = FastAPI()
        self.app.add_api_route("/recurly", self._take, methods=["POST"])

    async def _take(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        await asyncio.sleep(self.delay)
        return Response(status_code=self.status)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"{len(self.received)} notifications arrived, wanted {count}"
        return self.received


def signed_by(header: str, body: bytes, secret: str) -> bool:
    """Recurly's check: `<unix ms>,<sig>[,<sig>...]`, any sig = hex HMAC-SHA256(secret, f"{ms}.{body}")."""
    timestamp, *signatures = header.split(",")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with BackgroundServer(hook.app) as server:
        yield hook, server.url + "/recurly"


@pytest.fixture
def recurly(stripe_server: BackgroundServer) -> Iterator[httpx.Client]:
    """The site's API as Recurly's client library calls it (the controls under `/_sandbox` ignore both headers)."""
    base = stripe_server.url + "/recurly"
    with httpx.Client(base_url=base, auth=("recurly_private_key", ""), headers={"Accept": ACCEPT}, timeout=10) as c:
        yield c


@pytest.fixture
def site(recurly: httpx.Client, receiver: tuple[Receiver, str]) -> tuple[httpx.Client, Receiver]:
    hook, url = receiver
    assert recurly.post("/_sandbox/webhook", json={"url": url, "secret": SECRET}).status_code == 200
    return recurly, hook


def new_invoice(recurly: httpx.Client, amount: int = 2250, account: str = "acct-7") -> dict[str, Any]:
    made = recurly.post("/_sandbox/invoices", json={"account_code": account, "currency": "usd", "amount": amount})
    assert made.status_code == 200, made.text
    return made.json()


def past_due_invoice(recurly: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    invoice = new_invoice(recurly)
    failed = recurly.post(f"/_sandbox/invoices/{invoice['id']}/payment_failed", json=FAILURE)
    assert failed.status_code == 200, failed.text
    return invoice, failed.json()


def deliveries(recurly: httpx.Client, n: int, count: int) -> list[dict[str, Any]]:
    """Notification `n`'s deliveries once `count` are recorded (a delivery is recorded when its answer is in)."""
    deadline = time.monotonic() + 5
    while len(found := recurly.get("/_sandbox/events").json()["events"][n]["deliveries"]) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.02)
    return found


def notifications_sent(recurly: httpx.Client) -> list[tuple[str, str]]:
    events = recurly.get("/_sandbox/events").json()["events"]
    return [(e["notification"]["object_type"], e["notification"]["event_type"]) for e in events]


def test_the_api_refuses_calls_without_its_version_or_a_key(recurly: httpx.Client) -> None:
    invoice = new_invoice(recurly)
    path = f"/invoices/{invoice['id']}"

    no_version = recurly.get(path, headers={"Accept": "application/json"})
    old_version = recurly.get(path, headers={"Accept": "application/vnd.recurly.v2019-10-10"})
    no_key = httpx.get(f"{recurly.base_url}{path.lstrip('/')}", headers={"Accept": ACCEPT})
    empty_key = recurly.get(path, auth=("", "secret"))
    unknown = recurly.get("/invoices/zzzzzzzzzzzz")
    served = recurly.get(path, headers={"Accept": ACCEPT + "+json"})

    assert no_version.status_code == 406 and no_version.json()["error"]["type"] == "invalid_api_version"
    assert old_version.status_code == 406
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "unauthorized"
    assert empty_key.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    assert set(unknown.json()["error"]) == {"type", "message", "params"}
    assert served.status_code == 200 and served.json()["id"] == invoice["id"]
    assert served.headers["recurly-version"] == "recurly.v2021-02-25"


def test_invoices_have_recurly_ids_and_numbers_from_1001(recurly: httpx.Client) -> None:
    first, second = new_invoice(recurly), new_invoice(recurly, amount=999, account="acct-8")

    assert re.fullmatch(r"[a-z0-9]{12}", first["id"]) and re.fullmatch(r"[0-9a-f]{32}", first["uuid"])
    assert (first["number"], second["number"]) == ("1001", "1002")
    assert first["object"] == "invoice" and first["state"] == "pending" and first["currency"] == "USD"
    assert (first["total"], first["balance"], second["total"]) == (22.5, 22.5, 9.99)
    assert first["account"]["code"] == "acct-7" and re.fullmatch(r"[a-z0-9]{12}", first["account"]["id"])
    assert recurly.get("/invoices/number-1002").json()["id"] == second["id"]


def test_a_declined_payment_sends_a_signed_notification_and_reads_as_a_transaction(
    site: tuple[httpx.Client, Receiver],
) -> None:
    recurly, hook = site
    sent_after_ms = int(time.time() * 1000)
    invoice, created = past_due_invoice(recurly)

    headers, body = hook.wait_for(1)[0]
    notification = json.loads(body)
    by_uuid = recurly.get(f"/transactions/uuid-{notification['uuid']}")
    by_id = recurly.get(f"/transactions/{notification['id']}")

    assert signed_by(headers["recurly-signature"], body, SECRET)
    assert not signed_by(headers["recurly-signature"], body, "another secret")
    assert sent_after_ms - 1000 <= int(headers["recurly-signature"].split(",")[0]) <= int(time.time() * 1000)
    assert set(notification) == {"id", "object_type", "site_id", "event_type", "event_time", "uuid"}
    assert (notification["object_type"], notification["event_type"]) == ("payment", "failed")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", notification["event_time"])
    assert by_uuid.status_code == 200 and by_uuid.json() == by_id.json() == created
    transaction = by_id.json()
    assert (transaction["object"], transaction["id"], transaction["uuid"]) == (
        "transaction",
        notification["id"],
        notification["uuid"],
    )
    assert re.fullmatch(r"[a-z0-9]{12}", transaction["id"]) and re.fullmatch(r"[0-9a-f]{32}", transaction["uuid"])
    assert (transaction["status"], transaction["type"], transaction["origin"]) == ("declined", "purchase", "recurring")
    assert (transaction["amount"], transaction["currency"]) == (22.5, "USD")
    assert (transaction["status_code"], transaction["status_message"]) == ("insufficient_funds", "Insufficient funds.")
    assert transaction["gateway_reference"] == "ch_3Declined"
    assert transaction["invoice"] == {
        "object": "invoice_mini",
        "id": invoice["id"],
        "number": "1001",
        "state": "past_due",
    }
    assert transaction["account"] == invoice["account"]
    assert transaction["payment_gateway"]["id"] == "gw7stripe001"
    method = transaction["payment_method"]
    assert (method["gateway_token"], method["card_type"], method["last_four"]) == ("cus_R1/pm_R1", "MasterCard", "4444")
    assert (method["exp_month"], method["exp_year"], method["funding_source"]) == (11, 2031, "debit")
    assert recurly.get(f"/invoices/{invoice['id']}").json()["state"] == "past_due"
    assert [delivery["status"] for delivery in deliveries(recurly, 0, 1)] == [200]


def test_mark_successful_pays_once_and_replays_its_first_answer_under_the_same_key(
    site: tuple[httpx.Client, Receiver],
) -> None:
    recurly, hook = site
    invoice, _ = past_due_invoice(recurly)
    path = f"/invoices/{invoice['id']}/mark_successful"

    first = recurly.put(path, headers={"Idempotency-Key": "record-back:pay_1"})
    headers, body = hook.wait_for(2)[1]
    again = recurly.put(path, headers={"Idempotency-Key": "record-back:pay_2"})
    replayed = recurly.put(path, headers={"Idempotency-Key": "record-back:pay_1"})
    elsewhere = recurly.put(
        f"/invoices/{new_invoice(recurly)['id']}/mark_successful", headers={"Idempotency-Key": "record-back:pay_1"}
    )

    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["paid"], first.json()["balance"]) == ("paid", 22.5, 0.0)
    assert signed_by(headers["recurly-signature"], body, SECRET)
    assert json.loads(body) | {"site_id": None, "event_time": None} == {
        "id": invoice["id"],
        "object_type": "charge_invoice",
        "site_id": None,
        "event_type": "paid",
        "event_time": None,
        "uuid": invoice["uuid"],
    }
    assert again.status_code == 422 and again.json()["error"]["type"] == "invalid_transition"
    assert replayed.status_code == 200 and replayed.json() == first.json()
    assert elsewhere.status_code == 400
    assert notifications_sent(recurly) == [("payment", "failed"), ("charge_invoice", "paid")]


def test_injected_failures_fail_the_next_calls_and_keep_no_answer_for_their_key(recurly: httpx.Client) -> None:
    invoice, _ = past_due_invoice(recurly)
    path, key = f"/invoices/{invoice['id']}/mark_successful", {"Idempotency-Key": "record-back:pay_9"}

    assert recurly.post("/_sandbox/record_failures", json={"count": 2}).status_code == 200
    assert recurly.get("/_sandbox/record_failures").json() == {"count": 2, "status": 500}
    failures = [recurly.put(path, headers=key) for _ in range(2)]
    left = recurly.get("/_sandbox/record_failures").json()["count"]
    through = recurly.put(path, headers=key)

    assert [f.status_code for f in failures] == [500, 500]
    assert failures[0].json()["error"]["type"] == "internal_server_error"
    assert left == 0
    assert through.status_code == 200 and through.json()["state"] == "paid"


def test_paid_and_failed_at_recurly_close_the_invoice_and_say_so(site: tuple[httpx.Client, Receiver]) -> None:
    recurly, hook = site
    collected, _ = past_due_invoice(recurly)
    closed = new_invoice(recurly)

    paid = recurly.post(f"/_sandbox/invoices/{collected['id']}/paid")
    failed = recurly.post(f"/_sandbox/invoices/{closed['id']}/failed")
    hook.wait_for(3)
    paid_again = recurly.post(f"/_sandbox/invoices/{collected['id']}/paid")
    declined_after = recurly.post(f"/_sandbox/invoices/{closed['id']}/payment_failed", json=FAILURE)
    recorded_after = recurly.put(f"/invoices/{closed['id']}/mark_successful")

    assert paid.json()["state"] == "paid" and failed.json()["state"] == "failed"
    bodies = [json.loads(body) for _, body in hook.received[:3]]
    assert {(b["object_type"], b["event_type"], b["id"], b["uuid"]) for b in bodies[1:]} == {
        ("charge_invoice", "paid", collected["id"], collected["uuid"]),
        ("charge_invoice", "failed", closed["id"], closed["uuid"]),
    }
    assert paid_again.status_code == 422 and declined_after.status_code == 422
    assert recorded_after.status_code == 200 and recorded_after.json()["state"] == "paid"


def test_resend_signs_with_other_secrets_and_back_dates_the_signature(site: tuple[httpx.Client, Receiver]) -> None:
    recurly, hook = site
    past_due_invoice(recurly)
    original = hook.wait_for(1)[0][1]

    old = recurly.post("/_sandbox/events/0/resend", params={"secret": "rotated", "age_seconds": 600})
    headers, body = hook.wait_for(2)[1]
    both = recurly.post("/_sandbox/events/0/resend", params=[("secret", "rotated"), ("secret", SECRET)])
    both_headers = hook.wait_for(3)[2][0]
    assert both.status_code == 200, both.text
    missing = recurly.post("/_sandbox/events/7/resend")

    assert old.status_code == 200 and old.json()["status"] == 200
    assert body == original
    assert signed_by(headers["recurly-signature"], body, "rotated")
    assert not signed_by(headers["recurly-signature"], body, SECRET)
    age_ms = time.time() * 1000 - int(headers["recurly-signature"].split(",")[0])
    assert 600_000 <= age_ms < 610_000
    assert old.json()["timestamp_ms"] == int(headers["recurly-signature"].split(",")[0])
    assert len(both_headers["recurly-signature"].split(",")) == 3
    assert signed_by(both_headers["recurly-signature"], body, "rotated")
    assert signed_by(both_headers["recurly-signature"], body, SECRET)
    assert missing.status_code == 404
    assert [delivery["status"] for delivery in deliveries(recurly, 0, 3)] == [200] * 3


def test_each_delivery_records_its_answer_or_why_there_was_none(
    site: tuple[httpx.Client, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    recurly, hook = site
    monkeypatch.setattr(notifications, "DELIVERY_TIMEOUT_SECONDS", 0.3)
    hook.status = 503
    past_due_invoice(recurly)
    assert [delivery["status"] for delivery in deliveries(recurly, 0, 1)] == [503]

    hook.status, hook.delay = 200, 3.0
    started = time.monotonic()
    hung = recurly.post("/_sandbox/events/0/resend").json()
    waited = time.monotonic() - started
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    recurly.post("/_sandbox/webhook", json={"url": f"http://127.0.0.1:{closed_port}/recurly", "secret": SECRET})
    refused = recurly.post("/_sandbox/events/0/resend").json()

    assert hung["status"] is None and "no answer within" in hung["error"] and waited < 2.0
    assert refused["status"] is None and refused["error"].startswith("ConnectError")
    assert [delivery["status"] for delivery in deliveries(recurly, 0, 3)] == [503, None, None]


def test_a_notification_not_answered_2xx_is_sent_again_until_taken(site: tuple[httpx.Client, Receiver]) -> None:
    """As Recurly retries a failed notification on its own (ten times over about three days; here at the
    sandbox's redelivery delays, 0.2 s then 1 s): the same body each time, signed anew."""
    recurly, hook = site
    assert recurly.post("/_sandbox/webhook/redelivery", json={"seconds": [0.2, 1.0]}).status_code == 200
    hook.status = 503
    past_due_invoice(recurly)
    assert [d["status"] for d in deliveries(recurly, 0, 2)] == [503, 503]
    hook.status = 200

    found = deliveries(recurly, 0, 3)

    assert [d["status"] for d in found] == [503, 503, 200]
    assert len({body for _, body in hook.received}) == 1
    assert recurly.get("/_sandbox/webhook/redelivery").json() == {"seconds": [0.2, 1.0]}
