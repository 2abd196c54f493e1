"""Chargebee's webhooks at `POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}`: basic auth as
configured on the webhook; `payment_failed` starts the recovery from `content.transaction` and `content.invoice`,
`payment_succeeded` stops it, `invoice_deleted` and a voided `invoice_updated` cancel it; duplicates and unknown
types change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import MessageType
from recovery_runtime.secrets import SecretBox

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
