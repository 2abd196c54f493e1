"""Stripe Billing end to end (service processes, the Stripe sandbox, the merchant's receiver): Stripe's signed
`invoice.payment_failed` becomes a recovery, the retry's signed `payment_succeeded` reaches the merchant, and the
invoice is marked paid out of band at Stripe; replays, bad signatures, paid elsewhere, voided, a record back
that fails for a while, a dispute lost weeks later (credited out of band on the invoice, shown on the timeline), and
one the merchant challenges and wins (each step told in its signed webhook, nothing credited)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from recovery_cli.billing_demo import BillingSetup, StripeBillingScenario, poll
from recovery_cli.main import main
from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints, SeedScenario
from recovery_cli.stack import Stack
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import BillingEventReceived
from recovery_intake.console.payment_view import DONE_NOTICES
from recovery_sandbox.stripe.webhooks import stripe_signature
from support.billing import recovered_payment
from support.broker import broker_probe
from support.console import require_chromium, signed_in_console
from support.disputes import listen_for_disputes, lose_dispute, redeliver, stripe_answers
from support.stack import StackFactory

# A stack per test, not one for the module: the Stripe sandbox is one Stripe account, which sends every event to
# every webhook endpoint registered on it, so one test's merchants would hear another's invoices.


def scenario(stack: Stack) -> StripeBillingScenario:
    return StripeBillingScenario(SeedScenario(Endpoints.of(stack), say=lambda _: None))


def test_a_failed_stripe_invoice_is_recovered_and_marked_paid_at_stripe(stack: Stack) -> None:
    billing = scenario(stack)

    setup, invoice, webhook = billing.run()

    payment = recovered_payment(webhook, setup, invoice["id"])
    assert payment["amount"]["order_amount"] == 2250
    recovery = payment["feature_metadata"]["revenue_recovery"]
    assert recovery["first_payment_attempt_pg_error_code"] == "insufficient_funds"
    assert (invoice["status"], invoice["paid_out_of_band"]) == ("paid", True)
    # The invoice.paid that our own record back causes changes nothing.
    paid = billing.delivery("invoice.paid", invoice["id"])
    assert paid["status"] == 200


def test_a_stripe_api_slower_than_the_budget_is_answered_503_and_the_event_delivered_again_applies(
    start_stack: StackFactory,
) -> None:
    """Stripe's API answers the invoice read after intake's budget: the webhook is answered 503 at the budget,
    nothing stored; Stripe delivers the event again on its own (the sandbox's redelivery, 1 s here), that delivery
    is applied, and the invoice is recovered with one retry."""
    stack = start_stack(component_env={"intake": {"BILLING_API_TIMEOUT_SECONDS": "0.5"}})
    billing = scenario(stack)
    setup = billing.connect(billing.seed.bootstrap())
    httpx.post(f"{stack.stripe_url}/_sandbox/webhooks/redelivery", json={"seconds": [1]}).raise_for_status()
    # Two slow reads: intake's and the scenario's own read of the invoice it made, in whichever order they come.
    slow = httpx.post(f"{stack.stripe_url}/_sandbox/invoices/slow_reads", json={"count": 2, "seconds": 3})
    assert slow.status_code == 200, slow.text
    invoice = billing.failed_invoice()

    first = billing.delivery("invoice.payment_failed", invoice["id"])
    assert first["status"] == 503, first
    message = "The billing system could not be read: Stripe did not answer within 0.5 s"
    assert json.loads(first["answer"])["error"]["message"] == message

    webhook = billing.wait_for_merchant_webhook(invoice["id"])
    assert recovered_payment(webhook, setup, invoice["id"])["amount"]["order_amount"] == 2250
    assert billing.wait_for_invoice(invoice["id"])["status"] == "paid"
    charges = billing.seed.charges(invoice["customer"])
    assert [c["status"] for c in charges] == ["failed", "succeeded"]  # the invoice's decline, one retry
    deliveries = httpx.get(f"{stack.stripe_url}/_sandbox/events").json()["deliveries"]
    assert [d["status"] for d in deliveries if d["event"] == first["event"]] == [503, 200]


def test_a_replayed_event_and_a_bad_signature_change_nothing_over_http_or_the_broker(stack: Stack) -> None:
    billing = scenario(stack)
    setup = billing.connect(billing.seed.bootstrap())
    invoice = billing.failed_invoice()
    first = billing.delivery("invoice.payment_failed", invoice["id"])
    assert json.loads(first["answer"])["outcome"] == "applied"

    replay = httpx.post(f"{stack.stripe_url}/_sandbox/events/{first['event']}/resend").json()
    bad = httpx.post(
        f"{stack.stripe_url}/_sandbox/events/{first['event']}/resend", params={"secret": "whsec_not_the_merchants"}
    ).json()
    forged = json.dumps({**first["event_object"], "id": "evt_forged"}).encode()
    unsigned = httpx.post(f"{stack.intake_url}{setup.webhook_path}", content=forged)
    stale_stamp = int(time.time()) - 3600
    stale = httpx.post(
        f"{stack.intake_url}{setup.webhook_path}",
        content=forged,
        headers={"Stripe-Signature": stripe_signature(setup.webhook_secret, forged, stale_stamp)},
    )

    assert replay == {"statuses": [200]}
    assert bad == {"statuses": [401]}
    assert (unsigned.status_code, stale.status_code) == (401, 401)
    billing.wait_for_merchant_webhook(invoice["id"])
    assert billing.wait_for_invoice(invoice["id"])["status"] == "paid"
    charges = billing.seed.charges(invoice["customer"])
    assert [c["status"] for c in charges] == ["failed", "succeeded"]  # the invoice's decline, one retry
    succeeded = [w for w in billing.seed.received() if w.event_type == "payment_succeeded"]
    assert len(succeeded) == 1

    # A deployment with its own ingress: Stripe delivers there (not to intake), the ingress hands the signed
    # delivery on as `billing.event`, twice (at least once); intake verifies it and the recovery starts once.
    billing._stripe("POST", f"/v1/webhook_endpoints/{setup.webhook_endpoint_id}", {"disabled": "true"})
    over_broker = billing.failed_invoice()
    [stripe_event] = [
        e
        for e in httpx.get(f"{stack.stripe_url}/_sandbox/events").json()["events"]
        if e["data"]["object"]["id"] == over_broker["id"] and e["type"] == "invoice.payment_failed"
    ]
    handed_on = handed_on_by_ingress(setup, json.dumps(stripe_event).encode())
    asyncio.run(publish_twice(stack.rabbitmq_url, handed_on))

    billing.wait_for_merchant_webhook(over_broker["id"])
    assert billing.wait_for_invoice(over_broker["id"])["status"] == "paid"
    assert [c["status"] for c in billing.seed.charges(over_broker["customer"])] == ["failed", "succeeded"]
    succeeded = [w for w in billing.seed.received() if w.event_type == "payment_succeeded"]
    assert len(succeeded) == 2


def handed_on_by_ingress(setup: BillingSetup, payload: bytes) -> Envelope[BillingEventReceived]:
    """What an ingress in front of intake publishes for a Stripe delivery it took: the body and the signature."""
    now = datetime.now(UTC)
    merchant = setup.merchant
    return envelope_for(
        MessageType.BILLING_EVENT,
        BillingEventReceived.model_validate(
            {
                "connector": "stripebilling",
                "connector_account_id": setup.billing_mca,
                "body": payload.decode(),
                "headers": {"Stripe-Signature": stripe_signature(setup.webhook_secret, payload, int(now.timestamp()))},
                "received_at": now,
            }
        ),
        merchant_id=merchant.merchant_id,
        profile_id=merchant.profile_id,
    )


async def publish_twice(rabbitmq_url: str, message: Envelope[BillingEventReceived]) -> None:
    async with broker_probe(rabbitmq_url) as broker:
        await broker.publish(message)
        await broker.publish(message)


def test_paid_elsewhere_and_voided_invoices_stop_their_recoveries(stack: Stack) -> None:
    billing = scenario(stack)
    # A day before the first retry: the invoices are settled at Stripe before it.
    setup = billing.connect(billing.seed.bootstrap(), retry_ladder_seconds=[86_400], max_jitter_seconds=0)
    paid_elsewhere, voided = billing.failed_invoice(), billing.failed_invoice()
    payments = {}
    for invoice in (paid_elsewhere, voided):
        answer = json.loads(billing.delivery("invoice.payment_failed", invoice["id"])["answer"])
        payments[invoice["id"]] = answer["payment_id"]

    billing._stripe("POST", f"/v1/invoices/{paid_elsewhere['id']}/pay", {"paid_out_of_band": "true"})
    billing._stripe("POST", f"/v1/invoices/{voided['id']}/void", {})

    for invoice, event_type, status in (
        (paid_elsewhere, "invoice.paid", "succeeded"),
        (voided, "invoice.voided", "cancelled"),
    ):
        delivery = billing.delivery(event_type, invoice["id"])
        assert json.loads(delivery["answer"])["outcome"] == "applied"
        payment = billing.seed.wait_for_payment_status(setup.merchant, payments[invoice["id"]], status)
        assert payment["status"] == status
    for invoice in (paid_elsewhere, voided):
        assert [c["status"] for c in billing.seed.charges(invoice["customer"])] == ["failed"]  # never retried


def test_a_record_back_failing_for_a_while_is_retried_until_stripe_takes_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    billing = scenario(stack)
    setup = billing.connect(billing.seed.bootstrap(), retry_ladder_seconds=[600], max_jitter_seconds=0)
    invoice = billing.failed_invoice()
    httpx.post(f"{stack.stripe_url}/_sandbox/invoices/pay_failures", json={"count": 3, "status": 500})

    webhook = billing.wait_for_merchant_webhook(invoice["id"])
    paid = billing.wait_for_invoice(invoice["id"], timeout=60)

    assert (paid["status"], paid["paid_out_of_band"]) == ("paid", True)
    assert httpx.get(f"{stack.stripe_url}/_sandbox/invoices/pay_failures").json()["count"] == 0
    assert [c["status"] for c in billing.seed.charges(invoice["customer"])] == ["failed", "succeeded"]
    # The payment's timeline shows the record back and each try (read from the executor's internal endpoint).
    payment_id = webhook.body["content"]["object"]["id"]
    record_back = poll(
        lambda: timeline(stack, payment_id, capsys)["record_back"] or {},
        lambda found: found.get("status") == "accepted",
        timeout=10,
    )
    assert (record_back["billing_connector"], record_back["tries"]) == ("stripebilling", 4)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in record_back["attempts"]] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 500, "retrying"),
        (4, 200, "accepted"),
    ]
    shown = [e["what"] for e in timeline(stack, payment_id, capsys)["timeline"] if e["what"].startswith("record back")]
    assert shown[-1] == "record back to stripebilling try 4: HTTP 200, accepted" and len(shown) == 4
    # The public timeline (the read model, fed by the executor's `record-back.updated` events) shows each try too.
    path = f"{stack.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline"
    public = poll(
        lambda: httpx.get(path, headers=setup.merchant.headers(), timeout=10).json(),
        lambda answer: len(answer.get("record_back") or []) == 4,
        timeout=30,
    )
    assert [(t["attempt"], t["status_code"], t["state"], t["billing_connector"]) for t in public["record_back"]] == [
        (1, 500, "retrying", "stripebilling"),
        (2, 500, "retrying", "stripebilling"),
        (3, 500, "retrying", "stripebilling"),
        (4, 200, "accepted", "stripebilling"),
    ]
    entries = [e["detail"] for e in public["entries"] if e["kind"] == "record_back"]
    assert entries[-1] == "try 4 at stripebilling: accepted (HTTP 200)" and len(entries) == 4


def test_a_lost_dispute_is_credited_out_of_band_on_the_invoice_and_shown_on_the_timeline(stack: Stack) -> None:
    billing = scenario(stack)
    setup, invoice, webhook = billing.run()
    payment_id = webhook.body["content"]["object"]["id"]
    (charged,) = [c for c in billing.seed.charges(invoice["customer"]) if c["status"] == "succeeded"]
    intent_id = charged["payment_intent"]

    # Weeks later the customer disputes the charge, and the merchant accepts the loss at Stripe.
    dispute = lose_dispute(stack, setup.merchant, intent_id)

    told = billing.seed.wait_for_webhook(payment_id, "dispute_lost")
    assert told.signature_verified and told.body["content"]["object"]["connector_dispute_id"] == dispute["id"]
    notes = poll(lambda: credit_notes(stack, invoice["id"]), bool, timeout=30)
    assert [(n["amount"], n["out_of_band_amount"], n["reason"]) for n in notes] == [(2250, 2250, "fraudulent")]
    # The public timeline shows the lost dispute and its refund record's try, apart from the payment's record back.
    path = f"{stack.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline"
    public = poll(
        lambda: httpx.get(path, headers=setup.merchant.headers(), timeout=10).json(),
        lambda answer: any(d["refund_record"] for d in answer.get("disputes") or []),
        timeout=30,
    )
    (shown,) = public["disputes"]
    assert (shown["connector_dispute_id"], shown["amount"], shown["reason"]) == (dispute["id"], 2250, "fraudulent")
    assert [t["state"] for t in shown["refund_record"]] == ["accepted"]
    assert [t["state"] for t in public["record_back"]] == ["accepted"]
    # Stripe delivers the event again: nothing more is credited.
    assert redeliver(stack, "charge.dispute.closed") == [200]
    assert stripe_answers(stack, "charge.dispute.closed") == ["applied", "duplicate"]
    assert len(credit_notes(stack, invoice["id"])) == 1


def timeline(stack: Stack, payment_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`recovery timeline PAYMENT_ID --json` against the stack, as an operator runs it."""
    database = ["--mongodb-url", stack.mongodb_url, "--database", stack.config.mongodb_database]
    assert main(["timeline", payment_id, "--json", *database, "--executor-url", stack.url("executor")]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_a_dispute_challenged_and_won_is_told_at_each_step_and_credits_nothing(stack: Stack) -> None:
    require_chromium()
    billing = scenario(stack)
    setup, invoice, webhook = billing.run()
    payment_id = webhook.body["content"]["object"]["id"]
    (charged,) = [c for c in billing.seed.charges(invoice["customer"]) if c["status"] == "succeeded"]
    stripe = {"Authorization": f"Bearer {SANDBOX_SECRET_KEY}"}
    listen_for_disputes(
        stack, setup.merchant, ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
    )

    # The customer disputes the charge; the merchant submits its evidence from the console's Payment page (through
    # this system to Stripe); the network decides for the merchant.
    disputes = f"{stack.stripe_url}/_sandbox/disputes"
    dispute = httpx.post(disputes, data={"payment_intent": charged["payment_intent"]}).json()
    opened = billing.seed.wait_for_webhook(payment_id, "dispute_opened")
    merchant = setup.merchant
    # The merchant's to-do list through the API: the dispute waiting for its answer, with Stripe's deadline.
    dispute_id = opened.body["content"]["object"]["dispute_id"]
    to_answer = {"dispute_status": "dispute_opened", "sort": "answer_by"}
    listed = poll(
        lambda: httpx.get(f"{stack.intake_url}/v2/disputes/list", params=to_answer, headers=merchant.headers()).json(),
        lambda answer: bool(answer),
        timeout=30,
    )
    assert [(d["dispute_id"], d["dispute_status"]) for d in listed] == [(dispute_id, "dispute_opened")]
    assert listed[0]["challenge_required_by"] == _iso_millis(dispute["evidence_details"]["due_by"])
    with signed_in_console(stack.intake_url, merchant.api_key, merchant.merchant_id) as page:
        # The Overview lists it to answer; its link leads to the dispute on the payment's page.
        page.goto(f"{stack.intake_url}/console/overview")
        waiting = page.locator("#disputes-to-answer tr.dispute-to-answer")
        expect(waiting).to_have_count(1)
        expect(waiting).to_have_attribute("data-dispute", dispute_id)
        waiting.get_by_role("link", name=payment_id).click()
        expect(page).to_have_url(f"{stack.intake_url}/console/payments/{payment_id}#dispute-{dispute_id}")
        answer = page.locator(".dispute-answer")
        expect(answer).to_have_count(1)
        answer.locator("textarea[name=product_description]").fill("A yearly plan, used every week since")
        answer.locator("input[name=customer_email_address]").fill("jenny.rosen@example.com")
        receipt = {"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n%%EOF\n"}
        answer.locator("input[name=receipt]").set_input_files(receipt)
        answer.get_by_role("button", name="Submit evidence").click()
        expect(page.locator("#done-notice")).to_have_text(DONE_NOTICES["evidence"])
        expect(page.locator("#other-disputes tbody tr .dispute-status")).to_have_text("challenged (open)")
        expect(page.locator(".dispute-answer form.evidence")).to_have_count(0)
    at_stripe = httpx.get(f"{stack.stripe_url}/v1/disputes/{dispute['id']}", headers=stripe).json()
    assert at_stripe["status"] == "under_review"
    assert at_stripe["evidence"]["product_description"] == "A yearly plan, used every week since"
    assert at_stripe["evidence"]["customer_email_address"] == "jenny.rosen@example.com"
    # The receipt went to Stripe's File Upload API first, and the evidence names it.
    uploaded = httpx.get(f"{stack.stripe_url}/_sandbox/files/{at_stripe['evidence']['receipt']}").json()
    assert (uploaded["file"]["filename"], uploaded["file"]["purpose"]) == ("receipt.pdf", "dispute_evidence")
    challenged = billing.seed.wait_for_webhook(payment_id, "dispute_challenged")
    assert httpx.post(f"{disputes}/{dispute['id']}/decide", data={"outcome": "won"}).json()["status"] == "won"
    won = billing.seed.wait_for_webhook(payment_id, "dispute_won")

    told = (opened, challenged, won)
    assert all(w.signature_verified for w in told)
    objects = [w.body["content"]["object"] for w in told]
    assert {o["dispute_id"] for o in objects} == {opened.body["content"]["object"]["dispute_id"]}
    # Stripe's deadline for the merchant's evidence, as Hyperswitch's `challenge_required_by`, from the opening.
    assert objects[0]["challenge_required_by"] == _iso_millis(dispute["evidence_details"]["due_by"])
    assert [(o["dispute_stage"], o["connector_status"]) for o in objects] == [
        ("dispute", "needs_response"),
        ("dispute", "under_review"),
        ("dispute", "won"),
    ]
    # Numbered within the payment after its own webhook, in the order they happened.
    paid_number = _webhook_sequence(webhook)
    assert [_webhook_sequence(w) for w in told] == [paid_number + 1, paid_number + 2, paid_number + 3]
    # Stripe's own event of the submission races the answer's application: whichever came second changed nothing
    # (one `dispute_challenged` below).
    assert stripe_answers(stack, "charge.dispute.updated") in (["applied"], ["duplicate"])
    # Stripe delivers the ending again: nothing more is told; a won dispute credits nothing at the billing system.
    assert redeliver(stack, "charge.dispute.closed") == [200]
    assert stripe_answers(stack, "charge.dispute.closed") == ["applied", "duplicate"]
    assert credit_notes(stack, invoice["id"]) == []
    dispute_hooks = [w for w in billing.seed.received() if (w.event_type or "").startswith("dispute_")]
    assert sorted(w.event_type or "" for w in dispute_hooks) == ["dispute_challenged", "dispute_opened", "dispute_won"]
    # The public timeline tells the course; no figure keeps a won dispute (none was lost, none is open).
    path = f"{stack.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline"
    public = poll(
        lambda: httpx.get(path, headers=setup.merchant.headers(), timeout=10).json(),
        lambda answer: any(e["kind"] == "dispute_won" for e in answer.get("entries") or []),
        timeout=30,
    )
    steps = [e["kind"] for e in public["entries"] if e["kind"].startswith("dispute_")]
    assert steps == ["dispute_opened", "dispute_challenged", "dispute_won"] and public["disputes"] == []
    # The dispute as it stands now: won, received when it was opened; nothing left to answer.
    one = httpx.get(f"{stack.intake_url}/v2/disputes/{dispute_id}", headers=merchant.headers(), timeout=10).json()
    assert (one["dispute_status"], one["connector_status"]) == ("dispute_won", "won")
    assert one["created_at"] == objects[0]["created_at"]
    assert httpx.get(f"{stack.intake_url}/v2/disputes/list", params=to_answer, headers=merchant.headers()).json() == []
    # The merchant's console shows it won on the Payment page, with nothing left to answer.
    with signed_in_console(stack.intake_url, merchant.api_key, merchant.merchant_id) as page:
        page.goto(f"{stack.intake_url}/console/payments/{payment_id}")
        row = page.locator("#other-disputes tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator(".dispute-status")).to_have_text("won")
        expect(row).to_contain_text(dispute["id"])
        expect(row).to_contain_text("USD 22.50")
        expect(page.locator("#disputes")).to_have_count(0)
        expect(page.locator(".dispute-answer")).to_have_count(0)
        page.goto(f"{stack.intake_url}/console/overview")
        expect(page.locator("h1")).to_have_count(1)
        expect(page.locator("#disputes-to-answer")).to_have_count(0)


def test_a_dispute_the_merchant_accepts_through_the_api_is_lost_once_and_credited_once(stack: Stack) -> None:
    """`POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept`: Stripe closes the dispute (lost); the merchant
    is told `dispute_lost` once and the invoice credited once, though Stripe's own `charge.dispute.closed` follows."""
    billing = scenario(stack)
    setup, invoice, webhook = billing.run()
    payment_id = webhook.body["content"]["object"]["id"]
    (charged,) = [c for c in billing.seed.charges(invoice["customer"]) if c["status"] == "succeeded"]
    listen_for_disputes(stack, setup.merchant, ("charge.dispute.created", "charge.dispute.closed"))
    dispute = httpx.post(
        f"{stack.stripe_url}/_sandbox/disputes", data={"payment_intent": charged["payment_intent"]}
    ).json()
    opened = billing.seed.wait_for_webhook(payment_id, "dispute_opened")
    dispute_id = opened.body["content"]["object"]["dispute_id"]
    base = f"{stack.intake_url}/v2/payments/{payment_id}/disputes/{dispute_id}"
    # The recovery list finds the payments with a dispute to answer (the read side, moments later).
    assert poll(lambda: listed(stack, setup.merchant, "open"), lambda ids: payment_id in ids, timeout=30)

    accepted = httpx.post(f"{base}/accept", headers=setup.merchant.headers(), timeout=10)

    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["dispute_status"], accepted.json()["connector_status"]) == ("dispute_lost", "lost")
    told = billing.seed.wait_for_webhook(payment_id, "dispute_lost")
    assert told.signature_verified and told.body["content"]["object"]["connector_dispute_id"] == dispute["id"]
    notes = poll(lambda: credit_notes(stack, invoice["id"]), bool, timeout=30)
    assert [(n["amount"], n["reason"]) for n in notes] == [(2250, "fraudulent")]
    # Stripe's event of the closing races the answer's application: exactly one of them applied the loss, and
    # nothing more is told or credited.
    answers = poll(lambda: stripe_answers(stack, "charge.dispute.closed"), bool, timeout=30)
    assert answers in (["applied"], ["duplicate"]) and accepted.json()["updated"] is (answers == ["duplicate"])
    assert poll(lambda: listed(stack, setup.merchant, "lost"), lambda ids: payment_id in ids, timeout=30)
    assert payment_id not in listed(stack, setup.merchant, "open")
    again = httpx.post(f"{base}/accept", headers=setup.merchant.headers(), timeout=10)
    assert again.status_code == 400 and "an ended dispute takes no answer" in again.text
    lost = [w for w in billing.seed.received() if w.event_type == "dispute_lost"]
    assert len(lost) == 1
    assert len(credit_notes(stack, invoice["id"])) == 1


def listed(stack: Stack, merchant: Any, dispute_state: str) -> list[str]:
    """The merchant's recovered payments the public recovery list gives for `dispute_state`."""
    answer = httpx.get(
        f"{stack.intake_url}/v2/payments/recovery-list",
        params={"dispute_state": dispute_state},
        headers=merchant.headers(),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["data"]]


def credit_notes(stack: Stack, invoice_id: str) -> list[dict[str, Any]]:
    """The credit notes the Stripe sandbox has on the invoice."""
    headers = {"Authorization": f"Bearer {SANDBOX_SECRET_KEY}"}
    url = f"{stack.stripe_url}/v1/credit_notes"
    found: list[dict[str, Any]] = httpx.get(url, params={"invoice": invoice_id}, headers=headers).json()["data"]
    return found


def _webhook_sequence(webhook: Any) -> int:
    """The `webhook-sequence` header the dispatcher numbered the delivery with (within its payment)."""
    return int(next(value for name, value in webhook.headers if name.lower() == "webhook-sequence"))


def _iso_millis(unix_seconds: int) -> str:
    """A Unix time as the webhook body writes times (ISO 8601 UTC, milliseconds, `Z`)."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
