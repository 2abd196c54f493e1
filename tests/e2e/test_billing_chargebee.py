"""Chargebee end to end (service processes, the Chargebee and Stripe sandboxes, the merchant's receiver):
Chargebee's `payment_failed` (basic auth) becomes a recovery, the retry's signed `payment_succeeded` reaches the
merchant, and the payment is recorded at Chargebee (`record_payment`); replays, bad credentials, paid elsewhere,
deleted, a record back that fails for a while, and a dispute lost weeks later (Stripe's signed `charge.dispute.closed`
in, an offline refund recorded at Chargebee and the merchant's `dispute_lost` out), and refund records Chargebee
refused until they were abandoned, started again by the API and from the console."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import expect

from recovery_cli.billing_demo import ChargebeeScenario, poll
from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.billing import recovered_payment
from support.console import require_chromium, signed_in_console
from support.disputes import lose_dispute, redeliver, stripe_answers
from support.stack import StackFactory, resume_workflow

# One stack for the module's tests (tests/conftest.py): each works with a merchant, customers and invoices of its own.
SHARE_STACK = True


def scenario(stack: Stack) -> ChargebeeScenario:
    return ChargebeeScenario(SeedScenario(Endpoints.of(stack), say=lambda _: None))


def test_a_failed_chargebee_invoice_is_recovered_and_recorded_at_chargebee(stack: Stack) -> None:
    chargebee = scenario(stack)

    setup, invoice, webhook = chargebee.run()

    payment = recovered_payment(webhook, setup, invoice["id"])
    assert (
        payment["feature_metadata"]["revenue_recovery"]["first_payment_attempt_pg_error_code"] == "insufficient_funds"
    )
    assert (invoice["status"], invoice["amount_due"], invoice["amount_paid"]) == ("paid", 0, 2250)


def test_a_replay_after_the_invoice_was_paid_and_bad_credentials_change_nothing(stack: Stack) -> None:
    chargebee = scenario(stack)
    setup = chargebee.connect(chargebee.seed.bootstrap())
    invoice = chargebee.failed_invoice()
    first = chargebee.delivery("payment_failed", invoice["id"])
    assert json.loads(first["answer"])["outcome"] == "applied"
    assert chargebee.wait_for_invoice(invoice["id"])["status"] == "paid"

    # Chargebee sends the failure again after the invoice was paid (an answer it never got): intake reads the
    # invoice, finds it paid and starts nothing.
    replay = httpx.post(f"{chargebee.site}/_sandbox/events/{first['event']}/resend").json()
    bad = httpx.post(f"{chargebee.site}/_sandbox/events/{first['event']}/resend", params={"password": "guess"}).json()
    unauthenticated = httpx.post(f"{stack.intake_url}{setup.webhook_path}", content=b"{}")

    assert (replay["status"], json.loads(replay["answer"])["outcome"]) == (200, "ignored")
    assert bad["status"] == 401 and unauthenticated.status_code == 401
    charges = chargebee.seed.charges(invoice["stripe_customer"])
    assert [c["status"] for c in charges] == ["succeeded"]  # one retry


def test_paid_elsewhere_deleted_and_voided_invoices_stop_their_recoveries(stack: Stack) -> None:
    chargebee = scenario(stack)
    setup = chargebee.connect(chargebee.seed.bootstrap(), retry_ladder_seconds=[86_400], max_jitter_seconds=0)
    paid, deleted, voided = chargebee.failed_invoice(), chargebee.failed_invoice(), chargebee.failed_invoice()
    payments = {
        invoice["id"]: json.loads(chargebee.delivery("payment_failed", invoice["id"])["answer"])["payment_id"]
        for invoice in (paid, deleted, voided)
    }

    form = {"transaction[amount]": "2250", "transaction[payment_method]": "cash", "transaction[status]": "success"}
    chargebee._chargebee("POST", f"/api/v2/invoices/{paid['id']}/record_payment", form)
    httpx.post(f"{chargebee.site}/_sandbox/invoices/{deleted['id']}/deleted")
    # Chargebee's own API: the merchant voids the invoice (say, the subscription was cancelled).
    assert chargebee._chargebee("POST", f"/api/v2/invoices/{voided['id']}/void", {})["invoice"]["status"] == "voided"

    for invoice, event_type, status in (
        (paid, "payment_succeeded", "succeeded"),
        (deleted, "invoice_deleted", "cancelled"),
        (voided, "invoice_updated", "cancelled"),
    ):
        assert json.loads(chargebee.delivery(event_type, invoice["id"])["answer"])["outcome"] == "applied"
        assert (
            chargebee.seed.wait_for_payment_status(setup.merchant, payments[invoice["id"]], status)["status"] == status
        )
        assert chargebee.seed.charges(invoice["stripe_customer"]) == []  # never retried


def test_a_record_payment_failing_for_a_while_is_retried_until_chargebee_takes_it(stack: Stack) -> None:
    chargebee = scenario(stack)
    chargebee.connect(chargebee.seed.bootstrap(), retry_ladder_seconds=[600], max_jitter_seconds=0)
    httpx.post(f"{chargebee.site}/_sandbox/record_failures", json={"count": 3, "status": 500})
    invoice = chargebee.failed_invoice()

    paid = chargebee.wait_for_invoice(invoice["id"], timeout=60)

    assert paid["status"] == "paid"
    assert httpx.get(f"{chargebee.site}/_sandbox/record_failures").json()["count"] == 0
    assert [c["status"] for c in chargebee.seed.charges(invoice["stripe_customer"])] == ["succeeded"]


def test_a_lost_dispute_is_recorded_at_chargebee_as_a_refund_and_the_merchant_is_told(stack: Stack) -> None:
    chargebee = scenario(stack)
    setup = chargebee.connect(chargebee.seed.bootstrap())
    invoice = chargebee.failed_invoice()
    payment = recovered_payment(chargebee.wait_for_merchant_webhook(invoice["id"]), setup, invoice["id"])
    assert chargebee.wait_for_invoice(invoice["id"])["status"] == "paid"
    seed = chargebee.seed
    intent_id = seed.charges(invoice["stripe_customer"])[0]["payment_intent"]

    # Weeks later the customer disputes the charge, and the merchant accepts the loss at Stripe.
    dispute = lose_dispute(stack, setup.merchant, intent_id)

    told = seed.wait_for_webhook(payment["id"], "dispute_lost")
    assert told.signature_verified
    lost = told.body["content"]
    assert lost["type"] == "dispute_details"
    assert (lost["object"]["connector_dispute_id"], lost["object"]["amount"]) == (dispute["id"], "2250")
    assert lost["object"]["dispute_status"] == "dispute_lost"
    refund = poll(lambda: _refunds(chargebee, invoice["id"]), bool, timeout=30)
    assert [(r["amount"], r["payment_method"]) for r in refund] == [(2250, "chargeback")]

    # Stripe delivers the event again: nothing more is recorded, nobody is told twice.
    assert redeliver(stack, "charge.dispute.closed") == [200]
    assert stripe_answers(stack, "charge.dispute.closed") == ["applied", "duplicate"]
    assert len(_refunds(chargebee, invoice["id"])) == 1
    assert [w.event_type for w in seed.received() if w.object_id == payment["id"]].count("dispute_lost") == 1


def test_abandoned_refund_records_are_started_again_by_the_api_and_from_the_console(
    start_stack: StackFactory,
) -> None:
    """Chargebee refuses every refund until both disputes' refund records are abandoned (their tries span three
    days of business time, seconds at this time scale); the merchant starts one again by the process-tracker
    resume with its `dispute_id`, the other with the Payment page's button in Chromium, and each refund is recorded
    once."""
    require_chromium()
    stack = start_stack(time_scale=100_000)
    chargebee = scenario(stack)
    setup = chargebee.connect(chargebee.seed.bootstrap(), retry_ladder_seconds=[60], max_jitter_seconds=0)
    by_api, by_console = chargebee.failed_invoice(), chargebee.failed_invoice()
    payments = {
        invoice["id"]: recovered_payment(chargebee.wait_for_merchant_webhook(invoice["id"]), setup, invoice["id"])["id"]
        for invoice in (by_api, by_console)
    }
    for invoice in (by_api, by_console):
        assert chargebee.wait_for_invoice(invoice["id"])["status"] == "paid"
    refusals = f"{chargebee.site}/_sandbox/refund_failures"
    httpx.post(refusals, json={"count": 1000, "status": 500}).raise_for_status()
    intent_of = {
        i["id"]: chargebee.seed.charges(i["stripe_customer"])[0]["payment_intent"] for i in (by_api, by_console)
    }
    lose_dispute(stack, setup.merchant, intent_of[by_api["id"]])
    # The merchant's Stripe endpoint exists now: the second dispute reaches intake through it.
    stripe = {"Authorization": f"Bearer {SANDBOX_SECRET_KEY}"}
    opened = httpx.post(
        f"{stack.stripe_url}/_sandbox/disputes", data={"payment_intent": intent_of[by_console["id"]]}
    ).json()
    httpx.post(f"{stack.stripe_url}/v1/disputes/{opened['id']}/close", headers=stripe).raise_for_status()
    headers = setup.merchant.headers()

    def refund_record_reaches(invoice: dict[str, Any], state: str) -> tuple[str, list[dict[str, Any]]]:
        """The dispute lost on the invoice's payment (our id) and its refund record's tries, once it stands at
        `state` (the timeline's `disputes`)."""
        url = f"{stack.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payments[invoice['id']]}/timeline"
        found = poll(
            lambda: httpx.get(url, headers=headers, timeout=10).json().get("disputes") or [],
            lambda disputes: [t["state"] for t in disputes[0]["refund_record"]][-1:] == [state],
            timeout=60,
        )
        return found[0]["dispute_id"], list(found[0]["refund_record"])

    abandoned = {invoice["id"]: refund_record_reaches(invoice, "abandoned") for invoice in (by_api, by_console)}
    tries = {invoice_id: len(records) for invoice_id, (_, records) in abandoned.items()}
    assert min(tries.values()) > 1 and _refunds(chargebee, by_api["id"]) == []
    httpx.post(refusals, json={"count": 0}).raise_for_status()

    dispute_id = abandoned[by_api["id"]][0]
    resumed = resume_workflow(stack.intake_url, headers, payments[by_api["id"]], "PSYNC_WORKFLOW", dispute_id)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["id"].endswith(payments[by_api["id"]])  # the workflow, as any resume answers
    merchant = setup.merchant
    with signed_in_console(stack.intake_url, merchant.api_key, merchant.merchant_id) as page:
        page.goto(f"{stack.intake_url}/console/payments/{payments[by_console['id']]}")
        expect(page.locator("#disputes .refund-record-state")).to_have_text("abandoned")
        expect(page.locator("#disputes")).to_contain_text("USD 22.50")
        page.get_by_role("button", name="Start the refund record again").click()
        page.wait_for_url(f"**/console/payments/{payments[by_console['id']]}?done=refund-record")
        expect(page.locator("#done-notice")).to_contain_text("the dispute's refund record makes a new round")

    for invoice in (by_api, by_console):
        _, accepted = refund_record_reaches(invoice, "accepted")
        assert [t["attempt"] for t in accepted] == list(range(1, tries[invoice["id"]] + 2))
        assert [(r["amount"], r["payment_method"]) for r in _refunds(chargebee, invoice["id"])] == [
            (2250, "chargeback")
        ]
    again = resume_workflow(stack.intake_url, headers, payments[by_api["id"]], "PSYNC_WORKFLOW", dispute_id)
    assert again.status_code == 400 and "accepted" in again.json()["error"]["message"]


def _refunds(chargebee: ChargebeeScenario, invoice_id: str) -> list[dict[str, Any]]:
    """The refund transactions Chargebee holds against the invoice's recorded payments."""
    payments = chargebee._chargebee("GET", f"/api/v2/invoices/{invoice_id}/payments", None)["list"]
    refunds = []
    for entry in payments:
        for linked in entry["transaction"].get("linked_refunds") or []:
            found = chargebee._chargebee("GET", f"/api/v2/transactions/{linked['txn_id']}", None)["transaction"]
            refunds.append(found)
    return refunds
