"""Recurly's webhooks at `POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}` and over the broker:
`recurly-signature` (milliseconds, any of several signatures, 300 s); `payment.failed` starts the recovery from the
declined transaction read at the account's Recurly API base, `charge_invoice.paid` stops it, `charge_invoice.failed`
cancels it; duplicates, unknown types and transactions that are not declines change nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker
from pydantic import ValidationError

from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import IntentStatus
from recovery_intake.adapters.recurly import RecurlyApi
from recovery_intake.domain.deliveries import EventRefused, ProviderApiError, RefusalKind
from recovery_intake.domain.recurly_events import (
    parse_recurly_event,
    recurly_api_base,
    recurly_recovery_request,
    verify_recurly_signature,
)
from recovery_runtime.connector_apis import RECURLY_API_BASE
from recovery_runtime.secrets import SecretBox
from recovery_runtime.testing import publish

from .fakes import MERCHANT, PAYMENT_ACCOUNT, PROFILE, SETTINGS, Intake, http_client, intake
from .test_billing_broker_entry import QUEUE, handed_on

ACCOUNT = "mca_recurly_1"
SECRET = "recurly_webhook_key_0001"
API_KEY = "recurly_private_key_0001"
API_BASE = "https://v3.eu.recurly.com"
GATEWAY = "gw_stripe_1"
URL = f"/v2/webhooks/recovery/{MERCHANT}/{PROFILE}/{ACCOUNT}"
TXN_UUID = "5b2f0c6e3a1d4c9e8f7a6b5c4d3e2f10"
RECEIVED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


class ScriptedRecurly:
    """Recurly's API as intake reads it: the transactions it holds by the id a caller uses (`uuid-<uuid>`), and
    every read made; `unreachable` makes every read fail as a network error would."""

    def __init__(self) -> None:
        self.transactions: dict[str, dict[str, Any]] = {}
        self.reads: list[tuple[str, str, str]] = []
        self.unreachable = False

    async def transaction(self, base_url: str, api_key: str, transaction_id: str) -> dict[str, Any]:
        self.reads.append((base_url, api_key, transaction_id))
        if self.unreachable:
            raise ProviderApiError("Recurly unreachable: ConnectError")
        if transaction_id not in self.transactions:
            raise ProviderApiError(f"Recurly answered 404 for transaction {transaction_id}")
        return self.transactions[transaction_id]


@pytest.fixture
def recurly() -> ScriptedRecurly:
    scripted = ScriptedRecurly()
    scripted.transactions[f"uuid-{TXN_UUID}"] = declined_transaction()
    return scripted


@pytest.fixture
def svc(recurly: ScriptedRecurly) -> Intake:
    return with_recurly_account(intake(recurly=recurly), API_BASE)


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as http:
        yield http


def with_recurly_account(built: Intake, api_base: str | None) -> Intake:
    """`built` holding the Recurly billing account ACCOUNT (webhook key SECRET, private API key API_KEY), its API
    served at `api_base` (`record_back_url`; None: Recurly's own)."""
    box = SecretBox.from_settings(SETTINGS)
    recovery: dict[str, Any] = {
        "max_retry_count": 9,
        "billing_connector_retry_threshold": 0,
        "billing_account_reference": {PAYMENT_ACCOUNT: GATEWAY},
    }
    if api_base is not None:
        recovery["record_back_url"] = api_base
    built.connector_accounts.accounts[ACCOUNT] = {
        "_id": ACCOUNT,
        "merchant_id": MERCHANT,
        "profile_id": PROFILE,
        "connector_type": "billing_processor",
        "connector_name": "recurly",
        "disabled": False,
        "feature_metadata": {"revenue_recovery": recovery},
        "body": {
            "connector_account_details": {"auth_type": "HeaderKey", "api_key": box.seal(API_KEY)},
            "connector_webhook_details": {"merchant_secret": box.seal(SECRET)},
        },
    }
    return built


def declined_transaction(invoice_id: str = "inv_recurly_1", **changes: Any) -> dict[str, Any]:
    """A transaction as `GET /transactions/uuid-<uuid>` answers it (API v2021-02-25), declined for insufficient
    funds on a Stripe gateway."""
    transaction: dict[str, Any] = {
        "object": "transaction",
        "id": "txn_recurly_1",
        "uuid": TXN_UUID,
        "type": "purchase",
        "origin": "recurring",
        "status": "declined",
        "status_code": "insufficient_funds",
        "status_message": "The card has insufficient funds to cover the cost of the transaction.",
        "amount": 22.5,
        "currency": "USD",
        "gateway_reference": "ch_failed_1",
        "created_at": "2026-01-15T11:58:30Z",
        "invoice": {"id": invoice_id, "number": "1001", "state": "past_due"},
        "account": {"id": "acct_1", "code": "customer-1"},
        "payment_gateway": {"id": GATEWAY, "type": "stripe", "name": "Stripe"},
        "payment_method": {
            "object": "credit_card",
            "card_type": "Visa",
            "first_six": "424242",
            "last_four": "4242",
            "exp_month": 12,
            "exp_year": 2030,
            "funding_source": "debit",
            "gateway_token": "cus_stripe_1/pm_stripe_1",
            "gateway_code": "gw_code_1",
        },
    }
    return {**transaction, **changes}


def notification(object_type: str, event_type: str, object_id: str, uuid: str | None = None) -> bytes:
    body = {
        "id": object_id,
        "object_type": object_type,
        "site_id": "site_1",
        "event_type": event_type,
        "event_time": "2026-01-15T11:59:00Z",
        "uuid": uuid or hashlib.sha256(object_id.encode()).hexdigest()[:32],
    }
    return json.dumps(body).encode()


def payment_failed(uuid: str = TXN_UUID) -> bytes:
    return notification("payment", "failed", "txn_recurly_1", uuid)


def signature(payload: bytes, at: datetime, *secrets: str) -> str:
    """`recurly-signature` as Recurly sends it: the time in milliseconds, then one signature per secret."""
    stamp = int(at.timestamp() * 1000)
    signed = f"{stamp}.".encode() + payload
    return ",".join([str(stamp), *(hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets)])


async def deliver(
    svc: Intake, client: httpx.AsyncClient, payload: bytes, *, secret: str = SECRET, header: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    headers["recurly-signature"] = header if header is not None else signature(payload, svc.clock.now(), secret)
    return await client.post(URL, content=payload, headers=headers)


# --- the signature --------------------------------------------------------------------------------------------

SIGNATURES = {
    "signed": (lambda p: signature(p, RECEIVED, SECRET), None),
    "rotating-one-matches": (lambda p: signature(p, RECEIVED, "recurly_old_key", SECRET), None),
    "missing": (lambda p: None, "no recurly-signature header"),
    "wrong-secret": (lambda p: signature(p, RECEIVED, "someone_elses"), "no recurly-signature signature matches"),
    "another-body": (lambda p: signature(b"{}", RECEIVED, SECRET), "no recurly-signature signature matches"),
    "too-old": (
        lambda p: signature(p, RECEIVED - timedelta(seconds=301), SECRET),
        "recurly-signature timestamp is outside the tolerance",
    ),
    "from-the-future": (
        lambda p: signature(p, RECEIVED + timedelta(seconds=301), SECRET),
        "recurly-signature timestamp is outside the tolerance",
    ),
    "just-in-time": (lambda p: signature(p, RECEIVED - timedelta(seconds=299), SECRET), None),
    # Stripe's scheme, seconds and `t=`/`v1=`: not Recurly's.
    "stripe-shaped": (lambda p: "t=1768478400,v1=abc", "is not <milliseconds>,<signature>"),
    "no-signature": (lambda p: "1768478400000", "is not <milliseconds>,<signature>"),
    # A digit that is not a number (`"²".isdigit()`): refused, not an error of the server.
    "superscript-stamp": (lambda p: "1768478400²,abc", "is not <milliseconds>,<signature>"),
}


@pytest.mark.parametrize("case", list(SIGNATURES))
def test_the_signature_is_any_of_several_hmacs_made_within_300_seconds(case: str) -> None:
    header, refused = SIGNATURES[case]
    payload = payment_failed()

    if refused is None:
        verify_recurly_signature(header(payload), payload, SECRET, RECEIVED)
        return
    with pytest.raises(EventRefused) as caught:
        verify_recurly_signature(header(payload), payload, SECRET, RECEIVED)
    assert caught.value.kind is RefusalKind.UNAUTHENTICATED and refused in caught.value.reason


async def test_a_wrong_or_missing_signature_is_refused_with_nothing_stored_or_read(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly
) -> None:
    wrong = await deliver(svc, client, payment_failed(), secret="someone_elses")
    missing = await client.post(URL, content=payment_failed())
    stale = await deliver(
        svc, client, payment_failed(), header=signature(payment_failed(), RECEIVED - timedelta(hours=1), SECRET)
    )

    assert (wrong.status_code, missing.status_code, stale.status_code) == (401, 401, 401)
    assert "no recurly-signature header" in missing.text
    assert svc.intents.intents == {} and svc.publisher.published == [] and recurly.reads == []


# --- the events -----------------------------------------------------------------------------------------------


def test_the_event_id_is_the_object_type_event_type_and_uuid() -> None:
    failed = parse_recurly_event(payment_failed())
    paid = parse_recurly_event(notification("charge_invoice", "paid", "inv_1", "a" * 32))

    assert (failed.event_id, failed.invoice_id, failed.transaction_id) == (
        f"payment.failed:{TXN_UUID}",
        None,
        f"uuid-{TXN_UUID}",
    )
    assert (paid.event_id, paid.invoice_id, paid.transaction_id) == (f"charge_invoice.paid:{'a' * 32}", "inv_1", None)
    # Without a uuid the transaction is read by its Recurly id, and the id keys the event.
    by_id = parse_recurly_event(json.dumps({"id": "txn_9", "object_type": "payment", "event_type": "failed"}).encode())
    assert (by_id.event_id, by_id.transaction_id) == ("payment.failed:txn_9", "txn_9")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not a Recurly notification"),
        (b'{"object_type": "payment"}', "not a Recurly notification: 'event_type'"),
        (b'{"object_type": "payment", "event_type": "failed"}', "uuid and id malformed"),
        (b'{"object_type": "charge_invoice", "event_type": "paid", "uuid": "abc"}', "without the invoice's id"),
    ],
    ids=["not-json", "no-event-type", "no-id", "invoice-event-without-invoice-id"],
)
def test_a_body_that_is_not_a_recurly_notification_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(EventRefused) as caught:
        parse_recurly_event(payload)
    assert caught.value.kind is RefusalKind.INVALID and reason in caught.value.reason


async def test_payment_failed_starts_the_recovery_from_the_transaction_read_at_the_accounts_api_base(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly
) -> None:
    response = await deliver(svc, client, payment_failed())

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    assert recurly.reads == [(API_BASE, API_KEY, f"uuid-{TXN_UUID}")]
    intent = svc.intents.of_invoice(MERCHANT, "inv_recurly_1")
    assert intent is not None and intent.status is IntentStatus.FAILED
    snapshot = intent.snapshot
    assert (snapshot.amount, snapshot.currency, snapshot.connector_customer_id) == (2250, "USD", "cus_stripe_1")
    assert snapshot.tokens[0].token == "pm_stripe_1" and snapshot.tokens[0].card_network == "Visa"
    assert snapshot.payment_connector_id == PAYMENT_ACCOUNT and snapshot.billing_connector_id == ACCOUNT
    assert snapshot.first_error is not None and snapshot.first_error.code == "insufficient_funds"
    assert snapshot.failed_connector_transaction_id == "ch_failed_1"
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1


def test_every_mapped_field_of_the_transaction() -> None:
    request = recurly_recovery_request(
        declined_transaction(), billing_account_id=ACCOUNT, payment_account_id=PAYMENT_ACCOUNT
    )

    assert request is not None
    body = request.model_dump(mode="json", exclude_none=True)
    assert body["merchant_reference_id"] == "inv_recurly_1"
    assert body["amount_details"] == {"order_amount": 2250, "currency": "USD"}
    assert body["connector_customer_id"] == "cus_stripe_1"
    assert body["connector_transaction_id"] == "ch_failed_1"
    assert body["error"]["code"] == "insufficient_funds"
    assert body["error"]["message"] == "The card has insufficient funds to cover the cost of the transaction."
    assert (body["payment_method_type"], body["payment_method_sub_type"]) == ("card", "debit")
    assert body["payment_method_data"] == {
        "primary_processor_payment_method_token": "pm_stripe_1",
        "additional_payment_method_info": {
            "card_exp_month": "12",
            "card_exp_year": "2030",
            "last_four_digits": "4242",
            "card_network": "Visa",
            "card_type": "debit",
        },
    }
    assert body["billing_started_at"].startswith("2026-01-15T11:58:30")
    assert body["transaction_created_at"].startswith("2026-01-15T11:58:30")
    assert (body["action"], body["attempt_status"]) == ("schedule_failed_payment", "failure")
    assert (body["billing_merchant_connector_id"], body["payment_merchant_connector_id"]) == (ACCOUNT, PAYMENT_ACCOUNT)


@pytest.mark.parametrize(
    ("card_type", "network"),
    [
        ("Visa", "Visa"),
        ("MasterCard", "Mastercard"),
        ("American Express", "AmericanExpress"),
        ("Discover", "Discover"),
        ("JCB", "JCB"),
        ("Diners Club", "DinersClub"),
        ("Unknown", None),
    ],
)
def test_the_card_network_from_recurlys_card_type(card_type: str, network: str | None) -> None:
    transaction = declined_transaction()
    transaction["payment_method"] = {**transaction["payment_method"], "card_type": card_type}

    request = recurly_recovery_request(transaction, billing_account_id=ACCOUNT, payment_account_id=PAYMENT_ACCOUNT)

    assert request is not None
    info = request.payment_method_data.additional_payment_method_info
    assert info is not None and info.card_network == network


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [(22.5, "USD", 2250), (19.99, "USD", 1999), (0.1, "USD", 10), (100, "USD", 10000), (1000, "JPY", 1000),
     (1.234, "KWD", 1234)],
    ids=["22.5", "19.99", "0.1", "int", "yen", "dinar"],
)  # fmt: skip
def test_major_units_become_minor_units_of_the_currency(amount: float, currency: str, minor: int) -> None:
    # A yen is its own minor unit: 1000 JPY charged as 100000 would be a hundred times the invoice.
    transaction = declined_transaction(amount=amount, currency=currency)
    request = recurly_recovery_request(transaction, billing_account_id=ACCOUNT, payment_account_id=PAYMENT_ACCOUNT)
    assert request is not None and request.amount_details.order_amount == minor
    assert request.amount_details.currency == currency


async def test_a_gateway_token_that_is_not_customer_slash_payment_method_is_refused_with_the_reason(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly
) -> None:
    transaction = declined_transaction()
    transaction["payment_method"] = {**transaction["payment_method"], "gateway_token": "pm_only"}
    recurly.transactions[f"uuid-{TXN_UUID}"] = transaction

    response = await deliver(svc, client, payment_failed())

    assert response.status_code == 400
    assert "payment_method.gateway_token is not <customer>/<payment method>" in response.text
    assert svc.intents.intents == {} and svc.publisher.published == []


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "success"},
        {"status": "void"},
        {"invoice": None},
        # A `payment.failed` delivered after its invoice was paid, or closed as failed or voided: the transaction
        # stays `declined` for good, the invoice read with it is no longer owed.
        *(
            {"invoice": {"id": "inv_recurly_1", "number": "1001", "state": state}}
            for state in ("paid", "failed", "voided")
        ),
    ],
    ids=["success", "void", "no-invoice", "invoice-paid", "invoice-failed", "invoice-voided"],
)
async def test_a_transaction_that_is_not_a_declined_invoice_payment_is_ignored(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly, changes: dict[str, Any]
) -> None:
    recurly.transactions[f"uuid-{TXN_UUID}"] = declined_transaction(**changes)

    response = await deliver(svc, client, payment_failed())

    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_charge_invoice_paid_stops_the_recovery_and_failed_cancels_it(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly
) -> None:
    for n, invoice in enumerate(("inv_paid", "inv_failed")):
        uuid = f"{n:032x}"
        recurly.transactions[f"uuid-{uuid}"] = declined_transaction(invoice)
        assert (await deliver(svc, client, payment_failed(uuid))).json()["outcome"] == "applied"

    paid = await deliver(svc, client, notification("charge_invoice", "paid", "inv_paid"))
    failed = await deliver(svc, client, notification("charge_invoice", "failed", "inv_failed"))

    assert (paid.json()["outcome"], failed.json()["outcome"]) == ("applied", "applied")
    assert svc.intents.of_invoice(MERCHANT, "inv_paid").status is IntentStatus.SUCCEEDED  # type: ignore[union-attr]
    assert svc.intents.of_invoice(MERCHANT, "inv_failed").status is IntentStatus.CANCELLED  # type: ignore[union-attr]
    actions = [e.payload.action for e in svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)]
    assert actions == ["success_payment_external", "cancel_invoice"]


async def test_a_stop_for_an_invoice_without_a_recovery_and_unknown_types_are_ignored(
    svc: Intake, client: httpx.AsyncClient, recurly: ScriptedRecurly
) -> None:
    outcomes = [
        (await deliver(svc, client, payload)).json()["outcome"]
        for payload in (
            notification("charge_invoice", "paid", "inv_unknown"),
            notification("payment", "succeeded", "txn_2"),
            notification("account", "new", "acct_1"),
        )
    ]

    assert outcomes == ["ignored", "ignored", "ignored"]
    assert svc.intents.intents == {} and svc.publisher.published == [] and recurly.reads == []


async def test_a_duplicate_delivery_is_applied_once(svc: Intake, client: httpx.AsyncClient) -> None:
    first = await deliver(svc, client, payment_failed())
    # Recurly delivers again, signed anew a little later: the event, not the delivery, decides.
    svc.clock.advance(timedelta(seconds=30))
    again = await deliver(svc, client, payment_failed())

    assert [r.json()["outcome"] for r in (first, again)] == ["applied", "duplicate"]
    intent = svc.intents.of_invoice(MERCHANT, "inv_recurly_1")
    assert intent is not None and intent.requests == ()
    assert len(svc.publisher.published) == 1


# --- Recurly's API --------------------------------------------------------------------------------------------


def test_the_api_base_is_the_accounts_record_back_url_else_recurlys_own() -> None:
    account: dict[str, Any] = {"feature_metadata": {"revenue_recovery": {"record_back_url": API_BASE}}}
    assert recurly_api_base(account) == API_BASE
    assert (
        recurly_api_base({"feature_metadata": {"revenue_recovery": {}}}) == RECURLY_API_BASE == "https://v3.recurly.com"
    )


async def test_an_account_without_an_api_base_is_read_at_recurlys_own(recurly: ScriptedRecurly) -> None:
    svc = with_recurly_account(intake(recurly=recurly), None)
    async with http_client(svc) as client:
        assert (await deliver(svc, client, payment_failed())).json()["outcome"] == "applied"
    assert recurly.reads == [("https://v3.recurly.com", API_KEY, f"uuid-{TXN_UUID}")]


async def test_the_transaction_is_read_with_recurlys_version_and_the_private_key_as_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def recurly_api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=declined_transaction())

    async with httpx.AsyncClient(transport=httpx.MockTransport(recurly_api)) as http:
        transaction = await RecurlyApi(http).transaction("http://recurly.test/recurly/", API_KEY, f"uuid-{TXN_UUID}")

    assert transaction["uuid"] == TXN_UUID
    [request] = seen
    assert str(request.url) == f"http://recurly.test/recurly/transactions/uuid-{TXN_UUID}"
    assert request.headers["accept"] == "application/vnd.recurly.v2021-02-25"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()


async def test_a_refusal_by_recurly_is_a_billing_api_error_in_recurlys_words() -> None:
    def recurly_api(request: httpx.Request) -> httpx.Response:
        error = {"type": "not_found", "message": "Couldn't find Transaction", "params": [{"param": "transaction_id"}]}
        return httpx.Response(404, json={"error": error})

    async with httpx.AsyncClient(transport=httpx.MockTransport(recurly_api)) as http:
        with pytest.raises(ProviderApiError) as caught:
            await RecurlyApi(http).transaction("http://recurly.test", API_KEY, "uuid-missing")

    assert (
        str(caught.value) == "Recurly answered 404 for transaction uuid-missing: not_found: Couldn't find Transaction"
    )


async def test_recurly_unreachable_answers_503_so_recurly_delivers_again() -> None:
    """Through the real client and the egress policy: nothing is stored, and Recurly retries the delivery."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}/recurly"
    svc = with_recurly_account(intake(outbound_allowed_cidrs="127.0.0.0/8"), unreachable)

    async with http_client(svc) as client:
        response = await deliver(svc, client, payment_failed())

    assert response.status_code == 503, response.text
    assert "Recurly unreachable" in response.text
    assert svc.intents.intents == {} and svc.publisher.published == []


@contextlib.asynccontextmanager
async def trickling_server() -> AsyncIterator[str]:
    """A loopback HTTP address whose answer never ends: a status line, then a byte every 0.1 s, forever. No read
    waits long enough for a per-phase timeout to end it: the base of a billing system's API that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"1\r\n \r\n")
                await writer.drain()
                await asyncio.sleep(0.1)

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/recurly"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_recurly_that_does_not_answer_in_time_is_answered_503_within_the_budget() -> None:
    """Recurly counts a delivery failed unless it is answered within 5 s: a read of a hanging API is cut off at
    `BILLING_API_TIMEOUT_SECONDS` (in all, not per phase) and answered 503, with nothing stored."""
    async with trickling_server() as hanging:
        svc = with_recurly_account(
            intake(outbound_allowed_cidrs="127.0.0.0/8", billing_api_timeout_seconds=0.3), hanging
        )
        async with http_client(svc) as client:
            # The answer never ends: only the budget ends the read (the outer bound only stops a hung test).
            response = await asyncio.wait_for(deliver(svc, client, payment_failed()), timeout=60)

    assert response.status_code == 503, response.text
    assert "Recurly did not answer within 0.3 s" in response.text
    assert svc.intents.intents == {} and svc.publisher.published == []


def test_the_budget_leaves_room_within_recurlys_deadline() -> None:
    with pytest.raises(ValidationError, match="billing_api_timeout_seconds"):
        SETTINGS.model_validate({**SETTINGS.model_dump(), "billing_api_timeout_seconds": 5})
    assert type(SETTINGS)().billing_api_timeout_seconds == 3.0


# --- the broker's door ----------------------------------------------------------------------------------------


async def test_a_recurly_delivery_over_the_broker_starts_the_recovery_and_over_http_is_a_duplicate(
    svc: Intake, recurly: ScriptedRecurly
) -> None:
    payload = payment_failed()
    # The ingress passes the header as it came (any case): intake reads it lower-cased.
    signed = {"Recurly-Signature": signature(payload, svc.clock.now(), SECRET)}

    async with TestRabbitBroker(svc.service.broker) as broker, http_client(svc) as client:
        await publish(broker, QUEUE, handed_on(svc, payload, connector="recurly", account=ACCOUNT, headers=signed))
        again = await deliver(svc, client, payload)

    intent = svc.intents.of_invoice(MERCHANT, "inv_recurly_1")
    assert intent is not None and intent.snapshot.billing_connector_id == ACCOUNT
    assert again.json()["outcome"] == "duplicate"
    assert svc.publisher.dead_letters == [] and len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1


async def test_a_recurly_delivery_over_the_broker_with_another_secrets_signature_is_dead_lettered(svc: Intake) -> None:
    payload = payment_failed()
    signed = {"recurly-signature": signature(payload, svc.clock.now(), "someone_elses")}

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, handed_on(svc, payload, connector="recurly", account=ACCOUNT, headers=signed))

    [letter] = svc.publisher.dead_letters
    assert "unauthenticated: no recurly-signature signature matches the payload" in letter.reason
    assert svc.intents.intents == {} and svc.publisher.published == []
