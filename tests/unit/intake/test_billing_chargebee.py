"""Chargebee's webhooks at `POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}`: basic auth as
configured on the webhook; `payment_failed` starts the recovery from `content.transaction` and `content.invoice`,
`payment_succeeded` stops it, `invoice_deleted` and a voided `invoice_updated` cancel it; duplicates and unknown
types change nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import MessageType
from recovery_runtime.secrets import SecretBox
from recovery_sandbox.serving import BackgroundServer

from .fakes import MERCHANT, PAYMENT_ACCOUNT, PROFILE, SETTINGS, Intake, http_client, intake

ACCOUNT = "mca_chargebee_1"
USER, PASSWORD = "chargebee-hooks", "s3cret-pass"
URL = f"/v2/webhooks/recovery/{MERCHANT}/{PROFILE}/{ACCOUNT}"
GATEWAY = "gw_stripe_1"


@pytest.fixture
def svc() -> Intake:
    return with_chargebee_account(intake())


def with_chargebee_account(built: Intake) -> Intake:
    """`built` holding the Chargebee billing account ACCOUNT (webhook basic auth USER and PASSWORD)."""
    box = SecretBox.from_settings(SETTINGS)
    built.connector_accounts.accounts[ACCOUNT] = {
        "_id": ACCOUNT,
        "merchant_id": MERCHANT,
        "profile_id": PROFILE,
        "connector_type": "billing_processor",
        "connector_name": "chargebee",
        "disabled": False,
        "feature_metadata": {
            "revenue_recovery": {
                "max_retry_count": 9,
                "billing_connector_retry_threshold": 0,
                "billing_account_reference": {PAYMENT_ACCOUNT: GATEWAY},
            }
        },
        "body": {
            "connector_account_details": {"auth_type": "HeaderKey", "api_key": box.seal("test_chargebee_key")},
            "connector_webhook_details": {"merchant_secret": box.seal(USER), "additional_secret": box.seal(PASSWORD)},
        },
    }
    return built


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as http:
        yield http


def event(event_type: str, invoice_id: str = "inv_1", event_id: str = "ev_1", status: str = "payment_due") -> bytes:
    content: dict[str, Any] = {
        "transaction": {
            "id": "txn_1",
            "customer_id": "cb_cust_1",
            "amount": 2250,
            "currency_code": "USD",
            "date": 1767225600,
            "gateway": "stripe",
            "gateway_account_id": GATEWAY,
            "id_at_gateway": "ch_failed_1",
            "reference_number": "cus_stripe_1/pm_stripe_1",
            "status": "failure",
            "error_code": "insufficient_funds",
            "error_text": "Your card has insufficient funds.",
            "linked_invoices": [{"invoice_id": invoice_id}],
        },
        "invoice": {
            "id": invoice_id,
            "amount_due": 2250,
            "currency_code": "USD",
            "date": 1767225000,
            "status": status,
        },
        "card": {
            "card_type": "visa",
            "funding_type": "credit",
            "last4": "4242",
            "expiry_month": 12,
            "expiry_year": 2030,
        },
    }
    return json.dumps({"id": event_id, "event_type": event_type, "object": "event", "content": content}).encode()


async def deliver(
    client: httpx.AsyncClient, payload: bytes, auth: tuple[str, str] = (USER, PASSWORD)
) -> httpx.Response:
    return await client.post(URL, content=payload, auth=auth, headers={"Content-Type": "application/json"})


async def test_payment_failed_starts_the_recovery_from_the_transaction_and_invoice(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    response = await deliver(client, event("payment_failed"))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    snapshot = svc.intents.of_invoice(MERCHANT, "inv_1").snapshot  # type: ignore[union-attr]
    assert (snapshot.amount, snapshot.currency, snapshot.connector_customer_id) == (2250, "USD", "cus_stripe_1")
    assert snapshot.tokens[0].token == "pm_stripe_1" and snapshot.tokens[0].card_network == "Visa"
    assert snapshot.payment_connector_id == PAYMENT_ACCOUNT and snapshot.billing_connector_id == ACCOUNT
    assert snapshot.first_error is not None and snapshot.first_error.code == "insufficient_funds"
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1


async def test_a_duplicate_changes_nothing_and_unknown_types_are_ignored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    first = await deliver(client, event("payment_failed"))
    again = await deliver(client, event("payment_failed"))
    other = await deliver(client, event("subscription_created", event_id="ev_2"))

    assert [r.json()["outcome"] for r in (first, again, other)] == ["applied", "duplicate", "ignored"]
    assert len(svc.publisher.published) == 1


async def test_payment_succeeded_and_invoice_deleted_stop_the_recovery(svc: Intake, client: httpx.AsyncClient) -> None:
    await deliver(client, event("payment_failed", "inv_paid", "ev_f1"))
    await deliver(client, event("payment_failed", "inv_deleted", "ev_f2"))

    paid = await deliver(client, event("payment_succeeded", "inv_paid", "ev_s"))
    deleted = await deliver(client, event("invoice_deleted", "inv_deleted", "ev_d"))

    assert (paid.json()["outcome"], deleted.json()["outcome"]) == ("applied", "applied")
    assert svc.intents.of_invoice(MERCHANT, "inv_paid").status == "succeeded"  # type: ignore[union-attr]
    assert svc.intents.of_invoice(MERCHANT, "inv_deleted").status == "cancelled"  # type: ignore[union-attr]


async def test_an_updated_invoice_acts_on_its_status_voided_cancels_paid_stops_anything_else_is_ignored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    for invoice in ("inv_voided", "inv_written_off", "inv_moved"):
        await deliver(client, event("payment_failed", invoice, f"ev_f_{invoice}"))

    voided = await deliver(client, event("invoice_updated", "inv_voided", "ev_u1", status="voided"))
    paid = await deliver(client, event("invoice_updated", "inv_written_off", "ev_u2", status="paid"))
    other = await deliver(client, event("invoice_updated", "inv_moved", "ev_u3", status="payment_due"))

    assert [r.json()["outcome"] for r in (voided, paid, other)] == ["applied", "applied", "ignored"]
    statuses = [svc.intents.of_invoice(MERCHANT, i).status for i in ("inv_voided", "inv_written_off", "inv_moved")]
    assert statuses == ["cancelled", "succeeded", "failed"], statuses  # the last one still being recovered


async def test_wrong_or_missing_credentials_are_refused_with_nothing_stored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    wrong = await deliver(client, event("payment_failed"), auth=(USER, "guess"))
    missing = await client.post(URL, content=event("payment_failed"))

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_another_profiles_account_is_refused(svc: Intake, client: httpx.AsyncClient) -> None:
    svc.profiles.profiles["pro_2"] = {**svc.profiles.profiles[PROFILE], "_id": "pro_2"}

    response = await client.post(
        f"/v2/webhooks/recovery/{MERCHANT}/pro_2/{ACCOUNT}", content=event("payment_failed"), auth=(USER, PASSWORD)
    )

    assert response.status_code == 404
    assert svc.intents.intents == {}


# -- the invoice read at the account's site before a recovery starts -------------------------------------------


def site_of(sandbox: BackgroundServer) -> str:
    return f"{sandbox.url}/chargebee"


def chargebee_invoice(sandbox: BackgroundServer, amount: int = 2250) -> str:
    """An invoice at the sandbox's Chargebee site, `payment_due`."""
    answer = httpx.post(
        f"{site_of(sandbox)}/api/v2/invoices",
        data={"customer_id": "cb_cust_1", "currency_code": "USD", "charges[amount][0]": str(amount)},
        auth=("test_chargebee_key", ""),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["invoice"]["id"])


def with_site(built: Intake, site: str) -> Intake:
    account = built.connector_accounts.accounts[ACCOUNT]
    account["feature_metadata"]["revenue_recovery"]["record_back_url"] = site
    return built


@pytest.fixture
def read_svc(sandbox: BackgroundServer) -> Intake:
    """Intake whose Chargebee account names the sandbox's site, which it may reach (loopback allowed)."""
    return with_site(with_chargebee_account(intake(outbound_allowed_cidrs="127.0.0.0/8")), site_of(sandbox))


async def test_a_payment_failure_reads_the_invoice_and_a_late_one_for_a_paid_or_voided_invoice_starts_nothing(
    read_svc: Intake, sandbox: BackgroundServer
) -> None:
    """Chargebee retries a webhook it got no 2xx for, possibly after later events: a `payment_failed` for an invoice
    paid or voided since (the stop having found no recovery to end) would otherwise charge the customer again."""
    owed, paid, voided = (chargebee_invoice(sandbox) for _ in range(3))
    auth = ("test_chargebee_key", "")
    form = {"transaction[amount]": "2250", "transaction[payment_method]": "card", "transaction[status]": "success"}
    assert httpx.post(f"{site_of(sandbox)}/api/v2/invoices/{paid}/record_payment", data=form, auth=auth).is_success
    assert httpx.post(f"{site_of(sandbox)}/api/v2/invoices/{voided}/void", auth=auth).is_success

    async with http_client(read_svc) as client:
        answers = [
            await deliver(client, event("payment_failed", invoice, f"ev_{n}"))
            for n, invoice in enumerate((owed, paid, voided, "inv_not_at_chargebee"))
        ]

    assert [a.json()["outcome"] for a in answers] == ["applied", "ignored", "ignored", "ignored"]
    assert set(read_svc.intents.intents) == {read_svc.intents.of_invoice(MERCHANT, owed).payment_id}  # type: ignore[union-attr]
    assert len(read_svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1


async def test_a_chargebee_site_that_cannot_be_read_answers_503_with_nothing_stored(sandbox: BackgroundServer) -> None:
    """Unreachable, or answering 404 for another reason than "no such invoice" (a wrong site): never taken as an
    invoice that is gone, which would ignore every payment failure."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
    invoice = chargebee_invoice(sandbox)
    for site, said in ((unreachable, "Chargebee unreachable"), (f"{sandbox.url}/not-a-site", "Chargebee answered 404")):
        svc = with_site(with_chargebee_account(intake(outbound_allowed_cidrs="127.0.0.0/8")), site)

        async with http_client(svc) as client:
            answer = await deliver(client, event("payment_failed", invoice))

        assert answer.status_code == 503 and said in answer.text, answer.text
        assert svc.intents.intents == {} and svc.publisher.published == []


async def test_without_a_site_only_the_events_own_copy_of_the_invoice_is_checked(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """An account without `record_back_url` cannot be read: the event's invoice, as it was when the payment failed,
    is all there is to check."""
    answers = [
        await deliver(client, event("payment_failed", "inv_due", "ev_1")),
        await deliver(client, event("payment_failed", "inv_paid", "ev_2", status="paid")),
    ]

    assert [a.json()["outcome"] for a in answers] == ["applied", "ignored"]
    assert svc.intents.of_invoice(MERCHANT, "inv_paid") is None
    # An event that names its invoice only by the transaction's `linked_invoices` has no copy to check: applied.
    linked_only = json.loads(event("payment_failed", "inv_linked", "ev_3"))
    del linked_only["content"]["invoice"]
    answer = await deliver(client, json.dumps(linked_only).encode())
    assert answer.json()["outcome"] == "applied", answer.text
    assert svc.intents.of_invoice(MERCHANT, "inv_linked") is not None
