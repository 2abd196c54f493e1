"""Chargebee end to end (service processes, the Chargebee and Stripe sandboxes, the merchant's receiver):
Chargebee's `payment_failed` (basic auth) becomes a recovery, the retry's signed `payment_succeeded` reaches the
merchant, and the payment is recorded at Chargebee (`record_payment`); replays, bad credentials, paid elsewhere,
deleted, and a record back that fails for a while."""

from __future__ import annotations

import json

import httpx

from recovery_cli.billing_demo import ChargebeeScenario
from recovery_cli.demo import Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.billing import recovered_payment

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
