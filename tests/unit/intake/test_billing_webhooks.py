"""Stripe Billing's webhooks at `POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}`: signed
events become the invoice's recovery (the invoice re-read from the Stripe sandbox on loopback), paid elsewhere
or cancelled; duplicates change nothing, unknown types are ignored, bad signatures and other tenants' accounts
are refused with nothing stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import MessageType
from recovery_intake.adapters.stripe_billing import StripeBillingApi
from recovery_intake.domain.deliveries import EventRefused, ProviderApiError
from recovery_intake.domain.stripe_events import verify_stripe_signature
from recovery_runtime.secrets import SecretBox
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer
from recovery_sandbox.stripe.webhooks import stripe_signature

from .fakes import MERCHANT, PAYMENT_ACCOUNT, PROFILE, SETTINGS, Intake, http_client, intake

ACCOUNT = "mca_stripebilling_1"
SECRET = "whsec_billing_tests_0001"
STRIPE_KEY = "sk_test_billing_tests_0001"
URL = f"/v2/webhooks/recovery/{MERCHANT}/{PROFILE}/{ACCOUNT}"


@pytest.fixture
def stripe_api(sandbox: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {STRIPE_KEY}"}) as client:
        yield client


@pytest.fixture
def svc(sandbox: BackgroundServer) -> Intake:
    return with_stripebilling_account(intake(stripe_api_base=sandbox.url, outbound_allowed_cidrs="127.0.0.0/8"))


def with_stripebilling_account(built: Intake) -> Intake:
    """`built` holding the Stripe Billing account ACCOUNT (webhook secret SECRET, Stripe key STRIPE_KEY)."""
    box = SecretBox.from_settings(SETTINGS)
    built.connector_accounts.accounts[ACCOUNT] = {
        "_id": ACCOUNT,
        "merchant_id": MERCHANT,
        "profile_id": PROFILE,
        "connector_type": "billing_processor",
        "connector_name": "stripebilling",
        "disabled": False,
        "feature_metadata": {
            "revenue_recovery": {
                "max_retry_count": 9,
                "billing_connector_retry_threshold": 0,
                "billing_account_reference": {PAYMENT_ACCOUNT: "stripebilling"},
            }
        },
        "body": {
            "connector_account_details": {"auth_type": "HeaderKey", "api_key": box.seal(STRIPE_KEY)},
            "connector_webhook_details": {"merchant_secret": box.seal(SECRET)},
        },
    }
    return built


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as http:
        yield http


def failed_invoice(api: httpx.Client) -> dict[str, Any]:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    pm = api.post(
        "/v1/payment_methods/pm_card_chargeDeclinedInsufficientFunds/attach", data={"customer": customer["id"]}
    )
    api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": "2250", "currency": "usd"})
    invoice = api.post(
        "/v1/invoices",
        data={
            "customer": customer["id"],
            "default_payment_method": pm.json()["id"],
            "pending_invoice_items_behavior": "include",
        },
    ).json()
    assert api.post(f"/v1/invoices/{invoice['id']}/pay").status_code == 402
    return api.get(f"/v1/invoices/{invoice['id']}").json()


def settle(api: httpx.Client, invoice_id: str, how: str) -> dict[str, Any]:
    """The invoice paid (out of band), voided or marked uncollectible at the sandbox, as Stripe answers it."""
    path = {"paid": "pay", "void": "void", "uncollectible": "mark_uncollectible"}[how]
    params = {"paid_out_of_band": "true"} if how == "paid" else {}
    answer: dict[str, Any] = api.post(f"/v1/invoices/{invoice_id}/{path}", data=params).json()
    return answer


def event(event_type: str, invoice: dict[str, Any], event_id: str = "evt_1") -> bytes:
    body = {"id": event_id, "object": "event", "type": event_type, "data": {"object": invoice}}
    return json.dumps(body).encode()


async def deliver(
    svc: Intake, client: httpx.AsyncClient, payload: bytes, *, secret: str = SECRET, url: str = URL, skew: int = 0
) -> httpx.Response:
    stamp = int(svc.clock.now().timestamp()) + skew
    headers = {"Stripe-Signature": stripe_signature(secret, payload, stamp), "Content-Type": "application/json"}
    return await client.post(url, content=payload, headers=headers)


async def test_payment_failed_starts_the_recovery_from_the_invoice_reread_at_stripe(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    invoice = failed_invoice(stripe_api)
    # The event carries the invoice unexpanded: customer, card and decline come from the re-read.
    response = await deliver(svc, client, event("invoice.payment_failed", invoice))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    intent = svc.intents.of_invoice(MERCHANT, invoice["id"])
    assert intent is not None
    snapshot = intent.snapshot
    assert (snapshot.amount, snapshot.currency, snapshot.connector_customer_id) == (2250, "USD", invoice["customer"])
    assert snapshot.tokens[0].token == invoice["default_payment_method"]
    assert snapshot.billing_connector_id == ACCOUNT and snapshot.payment_connector_id == PAYMENT_ACCOUNT
    assert snapshot.first_error is not None and snapshot.first_error.code == "insufficient_funds"
    assert snapshot.tokens[0].card_network == "Visa"
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1


async def test_the_invoice_is_reread_pinned_to_2024_06_20_though_the_accounts_default_is_newer(
    sandbox: BackgroundServer, stripe_api: httpx.Client
) -> None:
    invoice = failed_invoice(stripe_api)  # read unpinned: the account's default version shows no charge
    sent: list[httpx.Request] = []
    answers: list[httpx.Response] = []

    async def on_request(request: httpx.Request) -> None:
        sent.append(request)

    async def on_response(response: httpx.Response) -> None:
        answers.append(response)

    hooks = {"request": [on_request], "response": [on_response]}
    async with httpx.AsyncClient(event_hooks=hooks) as http:
        reread = await StripeBillingApi(sandbox.url, http).invoice(STRIPE_KEY, invoice["id"])

    assert "charge" not in invoice and stripe.DEFAULT_API_VERSION == "2025-03-31.basil"
    assert [request.headers["Stripe-Version"] for request in sent] == ["2024-06-20"]
    assert [answer.headers["Stripe-Version"] for answer in answers] == ["2024-06-20"]
    assert reread["charge"]["outcome"]["reason"] == "insufficient_funds"
    assert reread["customer"]["id"] == invoice["customer"]


async def test_a_duplicate_delivery_changes_nothing(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    invoice = failed_invoice(stripe_api)
    payload = event("invoice.payment_failed", invoice)

    first = await deliver(svc, client, payload)
    svc.clock.advance(timedelta(seconds=30))
    again = await deliver(svc, client, payload)

    assert (first.json()["outcome"], again.json()["outcome"]) == ("applied", "duplicate")
    assert len(svc.publisher.published) == 1  # the one recovery.scheduled


async def test_paid_elsewhere_and_voided_stop_the_recovery(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    paid, voided = failed_invoice(stripe_api), failed_invoice(stripe_api)
    for invoice in (paid, voided):
        await deliver(svc, client, event("invoice.payment_failed", invoice, f"evt_f_{invoice['id']}"))

    answers = [
        await deliver(svc, client, event("invoice.paid", paid, "evt_paid")),
        await deliver(svc, client, event("invoice.voided", voided, "evt_void")),
    ]

    assert [a.json()["outcome"] for a in answers] == ["applied", "applied"]
    assert svc.intents.of_invoice(MERCHANT, paid["id"]).status == "succeeded"  # type: ignore[union-attr]
    assert svc.intents.of_invoice(MERCHANT, voided["id"]).status == "cancelled"  # type: ignore[union-attr]
    updates = [e.payload for e in svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)]
    assert len(updates) == 2


@pytest.mark.parametrize("settled", ["paid", "void", "uncollectible"])
async def test_a_payment_failed_delivered_after_the_invoice_settled_starts_nothing(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client, settled: str
) -> None:
    # Stripe redelivers an event it got no 2xx for, after later ones: here the invoice was paid (or closed) first,
    # its stop event found no recovery, and the late `payment_failed` re-reads an invoice with nothing left to pay.
    invoice = failed_invoice(stripe_api)
    assert settle(stripe_api, invoice["id"], settled)["status"] == settled

    answers = [
        await deliver(svc, client, event(f"invoice.{'paid' if settled == 'paid' else 'voided'}", invoice, "evt_a")),
        await deliver(svc, client, event("invoice.payment_failed", invoice, "evt_b")),
    ]

    assert [(a.status_code, a.json()["outcome"]) for a in answers] == [(200, "ignored"), (200, "ignored")]
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_stop_events_for_an_invoice_without_recovery_and_unknown_types_are_ignored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    invoice = {"id": "in_unknown", "object": "invoice"}

    answers = [
        await deliver(svc, client, event("invoice.paid", invoice, "evt_a")),
        await deliver(svc, client, event("customer.created", {"id": "cus_1", "object": "customer"}, "evt_b")),
    ]

    assert [(a.status_code, a.json()["outcome"]) for a in answers] == [(200, "ignored"), (200, "ignored")]
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_bad_signatures_are_refused_with_nothing_stored(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payload = event("invoice.payment_failed", failed_invoice(stripe_api))

    wrong = await deliver(svc, client, payload, secret="whsec_someone_else")
    stale = await deliver(svc, client, payload, skew=-301)
    unsigned = await client.post(URL, content=payload)

    assert [r.status_code for r in (wrong, stale, unsigned)] == [401, 401, 401]
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_an_account_of_another_merchant_or_profile_is_refused(
    svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payload = event("invoice.payment_failed", failed_invoice(stripe_api))
    svc.profiles.profiles["pro_2"] = {**svc.profiles.profiles[PROFILE], "_id": "pro_2"}

    other_merchant = await deliver(svc, client, payload, url=f"/v2/webhooks/recovery/merchant_2/{PROFILE}/{ACCOUNT}")
    other_profile = await deliver(svc, client, payload, url=f"/v2/webhooks/recovery/{MERCHANT}/pro_2/{ACCOUNT}")
    not_billing = await deliver(
        svc, client, payload, url=f"/v2/webhooks/recovery/{MERCHANT}/{PROFILE}/{PAYMENT_ACCOUNT}"
    )

    assert [r.status_code for r in (other_merchant, other_profile, not_billing)] == [404, 404, 400]
    assert svc.intents.intents == {}


def test_the_signature_check_takes_any_matching_v1_and_refuses_old_timestamps() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    good = stripe_signature(SECRET, b"{}", stamp)
    verify_stripe_signature(f"{good},v1=00ff", b"{}", SECRET, now)
    verify_stripe_signature(f"t={stamp},v1=00ff,{good.split(',')[1]}", b"{}", SECRET, now)
    with pytest.raises(Exception, match="tolerance"):
        verify_stripe_signature(good, b"{}", SECRET, now + timedelta(seconds=301))
    with pytest.raises(Exception, match="matches"):
        verify_stripe_signature(good, b"{ }", SECRET, now)
    # A digit that is not a number (`"²".isdigit()`): refused as a signature without its time, not a server error.
    with pytest.raises(EventRefused, match="lacks t="):
        verify_stripe_signature(f"t=²,{good.split(',')[1]}", b"{}", SECRET, now)


async def test_a_stripe_that_does_not_answer_in_time_is_a_billing_api_error() -> None:
    """The read of an invoice is bounded in all (a server that accepts and never answers), so a webhook is answered
    503 within its billing system's deadline."""
    never = asyncio.Event()

    async def hanging(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("never answered")

    async with httpx.AsyncClient(transport=httpx.MockTransport(hanging)) as http:
        with pytest.raises(ProviderApiError, match=r"^Stripe did not answer within 0.2 s$"):
            await asyncio.wait_for(StripeBillingApi("http://stripe.test", http, 0.2).invoice("sk", "in_1"), 60)
