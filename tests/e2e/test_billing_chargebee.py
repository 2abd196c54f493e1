"""Chargebee end to end (service processes, the Chargebee and Stripe sandboxes, the merchant's receiver):
Chargebee's `payment_failed` (basic auth) becomes a recovery, the retry's signed `payment_succeeded` reaches the
merchant, and the payment is recorded at Chargebee (`record_payment`); replays, bad credentials, paid elsewhere,
deleted, a record back that fails for a while, and a dispute lost weeks later (Stripe's signed `charge.dispute.closed`
in, an offline refund recorded at Chargebee and the merchant's `dispute_lost` out)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from recovery_cli.billing_demo import ChargebeeScenario, poll
from recovery_cli.demo import Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.billing import recovered_payment
from support.disputes import lose_dispute, redeliver, stripe_answers

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


def test_a_replay_and_bad_credentials_change_nothing(stack: Stack) -> None:
    chargebee = scenario(stack)
    setup = chargebee.connect(chargebee.seed.bootstrap())
    invoice = chargebee.failed_invoice()
    first = chargebee.delivery("payment_failed", invoice["id"])
    assert json.loads(first["answer"])["outcome"] == "applied"

    replay = httpx.post(f"{chargebee.site}/_sandbox/events/{first['event']}/resend").json()
    bad = httpx.post(f"{chargebee.site}/_sandbox/events/{first['event']}/resend", params={"password": "guess"}).json()
    unauthenticated = httpx.post(f"{stack.intake_url}{setup.webhook_path}", content=b"{}")

    assert (replay["status"], json.loads(replay["answer"])["outcome"]) == (200, "duplicate")
    assert bad["status"] == 401 and unauthenticated.status_code == 401
    assert chargebee.wait_for_invoice(invoice["id"])["status"] == "paid"
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


def _refunds(chargebee: ChargebeeScenario, invoice_id: str) -> list[dict[str, Any]]:
    """The refund transactions Chargebee holds against the invoice's recorded payments."""
    payments = chargebee._chargebee("GET", f"/api/v2/invoices/{invoice_id}/payments", None)["list"]
    refunds = []
    for entry in payments:
        for linked in entry["transaction"].get("linked_refunds") or []:
            found = chargebee._chargebee("GET", f"/api/v2/transactions/{linked['txn_id']}", None)["transaction"]
            refunds.append(found)
    return refunds
