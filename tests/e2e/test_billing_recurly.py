"""Recurly end to end (service processes, the Recurly and Stripe sandboxes, the merchant's receiver): Recurly's
signed `payment.failed` becomes a recovery from the transaction intake reads at Recurly, the retry's signed
`payment_succeeded` reaches the merchant, and the invoice is marked paid at Recurly (`mark_successful`); replays,
bad and stale signatures, paid and failed at Recurly, and a record back that fails for a while."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import expect

from recovery_cli.billing_demo import poll
from recovery_cli.billing_recurly import RecurlyScenario
from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.billing import recovered_payment
from support.console import require_chromium, signed_in_console
from support.disputes import lose_dispute, redeliver, stripe_answers
from support.stack import StackFactory, resume_workflow

# One stack for the module's tests (tests/conftest.py): each works with a merchant, customers and invoices of its own.
SHARE_STACK = True


def scenario(stack: Stack) -> RecurlyScenario:
    return RecurlyScenario(SeedScenario(Endpoints.of(stack), say=lambda _: None))


def test_a_declined_recurly_renewal_is_recovered_and_marked_paid_at_recurly(stack: Stack) -> None:
    recurly = scenario(stack)

    setup, invoice, webhook = recurly.run()

    payment = recovered_payment(webhook, setup, invoice["id"])
    assert payment["amount"]["order_amount"] == 2250 and payment["amount"]["currency"] == "USD"
    recovery = payment["feature_metadata"]["revenue_recovery"]
    assert recovery["first_payment_attempt_pg_error_code"] == "insufficient_funds"
    assert (invoice["state"], invoice["paid"], invoice["balance"]) == ("paid", 22.5, 0)
    # Recurly told of its own mark_successful (charge_invoice.paid): acknowledged, and the recovery stays succeeded.
    paid = recurly.delivery("charge_invoice.paid", invoice["id"])
    assert paid["status"] == 200 and json.loads(paid["answer"])["outcome"] in ("applied", "duplicate", "ignored")


def test_a_replay_and_bad_or_stale_signatures_change_nothing(stack: Stack) -> None:
    recurly = scenario(stack)
    setup = recurly.connect(recurly.seed.bootstrap(), retry_ladder_seconds=[86_400], max_jitter_seconds=0)
    invoice = recurly.failed_invoice()
    first = recurly.delivery("payment.failed", invoice["id"])
    assert json.loads(first["answer"])["outcome"] == "applied"

    resend = f"{recurly.sandbox}/_sandbox/events/{first['event']}/resend"
    replay = httpx.post(resend).json()
    forged = httpx.post(resend, params={"secret": "guessed"}).json()
    stale = httpx.post(resend, params={"age_seconds": 600}).json()
    rotated = httpx.post(resend, params={"secret": ["guessed", setup.webhook_secret]}).json()
    unsigned = httpx.post(f"{stack.intake_url}{setup.webhook_path}", content=b"{}")

    assert (replay["status"], json.loads(replay["answer"])["outcome"]) == (200, "duplicate")
    assert (rotated["status"], json.loads(rotated["answer"])["outcome"]) == (200, "duplicate")
    assert forged["status"] == 401 and "signature" in json.loads(forged["answer"])["error"]["message"]
    assert stale["status"] == 401 and "tolerance" in json.loads(stale["answer"])["error"]["message"]
    assert unsigned.status_code == 401
    assert recurly.seed.charges(invoice["stripe_customer"]) == []  # its one retry is a day away


def test_paid_and_failed_at_recurly_stop_their_recoveries(stack: Stack) -> None:
    recurly = scenario(stack)
    setup = recurly.connect(recurly.seed.bootstrap(), retry_ladder_seconds=[86_400], max_jitter_seconds=0)
    paid, failed = recurly.failed_invoice(), recurly.failed_invoice()
    payments = {
        invoice["id"]: json.loads(recurly.delivery("payment.failed", invoice["id"])["answer"])["payment_id"]
        for invoice in (paid, failed)
    }

    httpx.post(f"{recurly.sandbox}/_sandbox/invoices/{paid['id']}/paid").raise_for_status()
    httpx.post(f"{recurly.sandbox}/_sandbox/invoices/{failed['id']}/failed").raise_for_status()

    for invoice, event_type, status in (
        (paid, "charge_invoice.paid", "succeeded"),
        (failed, "charge_invoice.failed", "cancelled"),
    ):
        assert json.loads(recurly.delivery(event_type, invoice["id"])["answer"])["outcome"] == "applied"
        assert recurly.seed.wait_for_payment_status(setup.merchant, payments[invoice["id"]], status)["status"] == status
        assert recurly.seed.charges(invoice["stripe_customer"]) == []  # never retried


def test_a_mark_successful_failing_for_a_while_is_retried_until_recurly_takes_it(stack: Stack) -> None:
    recurly = scenario(stack)
    recurly.connect(recurly.seed.bootstrap(), retry_ladder_seconds=[600], max_jitter_seconds=0)
    httpx.post(f"{recurly.sandbox}/_sandbox/record_failures", json={"count": 3, "status": 500}).raise_for_status()
    invoice = recurly.failed_invoice()

    paid = recurly.wait_for_invoice(invoice["id"], timeout=60)

    assert paid["state"] == "paid"
    assert httpx.get(f"{recurly.sandbox}/_sandbox/record_failures").json()["count"] == 0
    assert [c["status"] for c in recurly.seed.charges(invoice["stripe_customer"])] == ["succeeded"]


def test_an_abandoned_mark_successful_is_started_again_by_the_api_and_from_the_console(
    start_stack: StackFactory,
) -> None:
    """Recurly refuses every try until both invoices' record backs are abandoned (three days of business time,
    seconds at this time scale); the merchant starts one again by the API's PSYNC resume, the other with the
    console's button in Chromium, and both invoices are marked paid, with nothing charged again."""
    require_chromium()
    stack = start_stack(time_scale=100_000)
    recurly = scenario(stack)
    setup = recurly.connect(recurly.seed.bootstrap(), retry_ladder_seconds=[60], max_jitter_seconds=0)
    failures = f"{recurly.sandbox}/_sandbox/record_failures"
    httpx.post(failures, json={"count": 1000, "status": 500}).raise_for_status()
    by_api, by_console = recurly.failed_invoice(), recurly.failed_invoice()
    payments = {
        invoice["id"]: recurly.wait_for_merchant_webhook(invoice["id"]).body["content"]["object"]["id"]
        for invoice in (by_api, by_console)
    }
    headers = setup.merchant.headers()

    def workflow(invoice: dict[str, Any]) -> str:
        return f"{stack.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payments[invoice['id']]}"

    def record_back_reaches(invoice: dict[str, Any], state: str) -> list[dict[str, Any]]:
        answer = poll(
            lambda: httpx.get(f"{workflow(invoice)}/timeline", headers=headers, timeout=10).json(),
            lambda found: [t["state"] for t in found.get("record_back") or []][-1:] == [state],
            timeout=60,
        )
        return list(answer["record_back"])

    def resume(invoice: dict[str, Any]) -> httpx.Response:
        return resume_workflow(stack.intake_url, headers, payments[invoice["id"]], "PSYNC_WORKFLOW")

    tries = {invoice["id"]: len(record_back_reaches(invoice, "abandoned")) for invoice in (by_api, by_console)}
    assert set(tries.values()) == {14} and recurly.invoice(by_api["id"])["state"] == "past_due"
    # The list finds the record backs to start again (the read model's `record_back_state`, an extension).
    listed = httpx.get(
        f"{stack.intake_url}/v2/payments/recovery-list",
        params=[("record_back_state", "abandoned"), ("record_back_state", "blocked")],
        headers=headers,
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert sorted(p["id"] for p in listed.json()["data"]) == sorted(payments.values())
    httpx.post(failures, json={"count": 0}).raise_for_status()

    restarted = resume(by_api)
    assert restarted.status_code == 200, restarted.text
    assert restarted.json()["id"].endswith(payments[by_api["id"]])  # the workflow, as any resume answers
    merchant = setup.merchant
    with signed_in_console(stack.intake_url, merchant.api_key, merchant.merchant_id) as page:
        # The other one was started again by the API just before: one left waiting.
        expect(page.locator("#record-backs-waiting")).to_contain_text("1 record back to the billing system is")
        page.goto(f"{stack.intake_url}/console/recoveries")
        page.get_by_label("Record back").select_option("attention")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/console/recoveries?*record_back=attention*")
        expect(page.get_by_role("link", name=payments[by_console["id"]])).to_be_visible()
        # The other one was started again by the API just before: no longer waiting for anyone.
        assert page.get_by_role("link", name=payments[by_api["id"]]).count() == 0
        page.goto(f"{stack.intake_url}/console/payments/{payments[by_console['id']]}")
        expect(page.locator("#record-back-state")).to_have_text("abandoned")
        page.get_by_role("button", name="Start the record back again").click()
        page.wait_for_url(f"**/console/payments/{payments[by_console['id']]}?done=record-back")
        expect(page.locator("#done-notice")).to_contain_text("the record back to the billing system makes a new")

    for invoice in (by_api, by_console):
        assert recurly.wait_for_invoice(invoice["id"])["state"] == "paid"
        accepted = record_back_reaches(invoice, "accepted")
        assert [t["attempt"] for t in accepted] == list(range(1, tries[invoice["id"]] + 2))
        assert [c["status"] for c in recurly.seed.charges(invoice["stripe_customer"])] == ["succeeded"]
    again = resume(by_console)
    assert again.status_code == 400 and "accepted" in again.json()["error"]["message"]


def test_a_lost_dispute_is_refunded_externally_on_the_invoice_and_the_merchant_is_told(stack: Stack) -> None:
    recurly = scenario(stack)
    setup = recurly.connect(recurly.seed.bootstrap())
    invoice = recurly.failed_invoice()
    payment = recovered_payment(recurly.wait_for_merchant_webhook(invoice["id"]), setup, invoice["id"])
    assert recurly.wait_for_invoice(invoice["id"])["status"] == "paid"
    (charged,) = [c for c in recurly.seed.charges(invoice["stripe_customer"]) if c["status"] == "succeeded"]

    # Weeks later the customer disputes the charge, and the merchant accepts the loss at Stripe.
    dispute = lose_dispute(stack, setup.merchant, charged["payment_intent"])

    told = recurly.seed.wait_for_webhook(payment["id"], "dispute_lost")
    assert told.signature_verified and told.body["content"]["object"]["connector_dispute_id"] == dispute["id"]
    credits = poll(lambda: _credit_invoices(recurly, invoice["id"]), bool, timeout=30)
    assert [(c["total"], c["transactions"][0]["payment_method"]["object"]) for c in credits] == [(-22.5, "other")]
    # Stripe delivers the event again: nothing more is refunded.
    assert redeliver(stack, "charge.dispute.closed") == [200]
    assert stripe_answers(stack, "charge.dispute.closed") == ["applied", "duplicate"]
    assert len(_credit_invoices(recurly, invoice["id"])) == 1


def _credit_invoices(recurly: RecurlyScenario, invoice_id: str) -> list[dict[str, Any]]:
    """The credit invoices Recurly holds against the invoice (its related invoices)."""
    path = f"{recurly.sandbox}/invoices/{invoice_id}/related_invoices"
    related = recurly.seed._call("GET", path, headers=recurly.api)["data"]
    return [i for i in related if i.get("type") == "credit"]
