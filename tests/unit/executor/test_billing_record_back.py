"""Record back to Stripe Billing: a successful retry marks the invoice paid out of band at Stripe (the sandbox on
loopback, through the egress policy's client), once, retried on timers while Stripe fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ConnectorAccountUpdated, RecordBack
from recovery_executor.adapters.billing_systems import BillingSystemRecorder
from recovery_executor.app import build_service
from recovery_executor.dependencies import ExecutorAdapters
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind
from recovery_executor.domain.messages import record_back_command
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.secrets import SecretBox
from recovery_runtime.testing import FixedClock, InMemoryPaymentFences, InMemoryUnitOfWork, RecordingPublisher
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

from .builders import planned, record_back
from .fakes import (
    INSTANCE,
    Executor,
    InMemoryAttempts,
    InMemoryConnectorAccounts,
    InMemoryPaymentStates,
    InMemoryRecordBacks,
    ScriptedBilling,
    ScriptedConnector,
)

QUEUE = "executor.record-back"
BILLING_ACCOUNT = "mca_stripebilling"
STRIPE_KEY = "sk_test_billing_record_back_1"
SETTINGS = ExecutorSettings(service_instance_id=INSTANCE)
# The version the executor pins; the sandbox's account defaults to a newer one (2025-03-31.basil: no `charge`).
PINNED = {"Stripe-Version": "2024-06-20"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundServer]:
    with BackgroundServer(stripe.create_app()) as server:
        yield server


@pytest.fixture
def stripe_api(sandbox: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {STRIPE_KEY}"}) as client:
        yield client


@pytest.fixture
def stripe_answers() -> list[httpx.Response]:
    """The sandbox's answers to the executor's calls (each with its request)."""
    return []


@pytest.fixture
async def executor(sandbox: BackgroundServer, stripe_answers: list[httpx.Response]) -> AsyncIterator[Executor]:
    publisher, clock = RecordingPublisher(), FixedClock()
    attempts, accounts, record_backs = InMemoryAttempts(), InMemoryConnectorAccounts(), InMemoryRecordBacks()
    connector, billing = ScriptedConnector(), ScriptedBilling()
    http = guarded_http_client(EgressGuard(EgressPolicy.from_setting("127.0.0.0/8")))

    async def record(response: httpx.Response) -> None:
        stripe_answers.append(response)

    http.event_hooks = {"response": [record]}
    adapters = ExecutorAdapters(
        unit_of_work=InMemoryUnitOfWork(publisher),
        publisher=publisher,
        clock=clock,
        attempts=attempts,
        payment_states=InMemoryPaymentStates(attempts),
        connector_accounts=accounts,
        record_backs=record_backs,
        connectors=lambda account: connector,
        billing=billing,
        payment_fences=InMemoryPaymentFences(),
        billing_systems=BillingSystemRecorder(
            stripe_api_base=sandbox.url, http_client=http, box=SecretBox.from_settings(SETTINGS), accounts=accounts
        ),
    )
    service = build_service(SETTINGS, adapters)
    running = Executor(
        service,
        publisher,
        clock,
        attempts,
        adapters.payment_states,
        accounts,
        record_backs,
        connector,
        billing,  # type: ignore[arg-type]
    )
    async with TestRabbitBroker(service.broker) as broker:
        running.broker = broker
        await running.send("executor.connector-account-updated", billing_account())
        yield running
    await http.aclose()


def billing_account() -> Envelope[ConnectorAccountUpdated]:
    return envelope_for(
        MessageType.CONNECTOR_ACCOUNT_UPDATED,
        ConnectorAccountUpdated(
            connector_account_id=BILLING_ACCOUNT,
            merchant_id="merchant_test",
            profile_id="pro_test",
            version=1,
            connector_type="billing_processor",
            connector_name="stripebilling",
            api_key=SecretBox.from_settings(SETTINGS).seal(STRIPE_KEY),
            disabled=False,
        ),
    )


def open_invoice(api: httpx.Client) -> str:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": "2250", "currency": "usd"})
    invoice = api.post(
        "/v1/invoices", data={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
    ).json()
    api.post(f"/v1/invoices/{invoice['id']}/finalize")
    return str(invoice["id"])


def to_stripe_billing(invoice_id: str, payment_id: str = "12345_pay_1", attempt: int = 1) -> Envelope[RecordBack]:
    generic = record_back(payment_id, attempt)
    body = generic.payload.body.model_copy(update={"merchant_reference_id": invoice_id})
    payload = generic.payload.model_copy(
        update={"url": "", "body": body, "billing_connector": "stripebilling", "billing_connector_id": BILLING_ACCOUNT}
    )
    return generic.model_copy(update={"payload": payload})


def pay_out_of_band(api: httpx.Client, invoice_id: str) -> None:
    api.post(f"/v1/invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"})


def unpinned_version(api: httpx.Client, invoice_id: str) -> str:
    """The version the sandbox serves a request without `Stripe-Version` as (the account's default)."""
    return api.get(f"/v1/invoices/{invoice_id}").headers["Stripe-Version"]


def invoice(api: httpx.Client, invoice_id: str) -> dict[str, Any]:
    return api.get(f"/v1/invoices/{invoice_id}", headers=PINNED).json()


def test_a_successful_retry_of_a_stripe_billing_invoice_emits_its_record_back() -> None:
    command = planned(billing_connector_name="stripebilling", billing_connector_id=BILLING_ACCOUNT).payload
    outcome = ChargeOutcome(ChargeOutcomeKind.SUCCEEDED, connector_transaction_id="pi_1")

    message = record_back_command(command, outcome, "cause").payload

    assert (message.billing_connector, message.billing_connector_id, message.url) == (
        "stripebilling",
        BILLING_ACCOUNT,
        "",
    )


async def test_the_invoice_is_marked_paid_out_of_band_once(executor: Executor, stripe_api: httpx.Client) -> None:
    invoice_id = open_invoice(stripe_api)
    request = to_stripe_billing(invoice_id)

    await executor.send(QUEUE, request)
    await executor.send(QUEUE, request.model_copy(update={"message_id": "a-timer-fired-twice"}))

    paid = invoice(stripe_api, invoice_id)
    assert (paid["status"], paid["paid_out_of_band"], paid["charge"]) == ("paid", True, None)
    progress = executor.record_backs.progress["12345_pay_1"]
    assert (progress.status, progress.attempts) == (RecordBackStatus.ACCEPTED, 1)
    assert executor.billing.calls == []  # not the custombilling callback
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.billing_connector, updated.payload.billing_connector_id, updated.payload.state) == (
        "stripebilling", BILLING_ACCOUNT, "accepted",
    )  # fmt: skip


async def test_the_record_back_is_pinned_to_2024_06_20_though_the_accounts_default_is_newer(
    executor: Executor, stripe_api: httpx.Client, stripe_answers: list[httpx.Response]
) -> None:
    invoice_id = open_invoice(stripe_api)
    assert unpinned_version(stripe_api, invoice_id) == "2025-03-31.basil"

    await executor.send(QUEUE, to_stripe_billing(invoice_id, "12345_pay_4"))

    [answer] = stripe_answers
    assert (answer.request.method, answer.request.url.path) == ("POST", f"/v1/invoices/{invoice_id}/pay")
    assert answer.request.headers["Stripe-Version"] == "2024-06-20"
    # Stripe's answer is the paid invoice as 2024-06-20 shows it, `charge` (none: out of band) and all.
    assert answer.headers["Stripe-Version"] == "2024-06-20"
    assert (answer.json()["status"], answer.json()["paid_out_of_band"], answer.json()["charge"]) == ("paid", True, None)
    assert executor.record_backs.progress["12345_pay_4"].status is RecordBackStatus.ACCEPTED


async def test_stripe_failing_is_retried_on_a_timer_then_recorded(
    executor: Executor, stripe_api: httpx.Client, sandbox: BackgroundServer
) -> None:
    invoice_id = open_invoice(stripe_api)
    httpx.post(sandbox.url + "/_sandbox/invoices/pay_failures", json={"count": 1})

    await executor.send(QUEUE, to_stripe_billing(invoice_id, "12345_pay_3"))
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    assert invoice(stripe_api, invoice_id)["status"] == "open"
    assert executor.record_backs.tries["12345_pay_3"][0].status_code == 500

    executor.clock.advance(timedelta(minutes=1))
    await executor.send(QUEUE, Envelope[RecordBack].model_validate(timer.payload.message))

    assert invoice(stripe_api, invoice_id)["status"] == "paid"
    assert executor.record_backs.progress["12345_pay_3"].status is RecordBackStatus.ACCEPTED
    # The payment's timeline reads the record back and each try from the executor's internal endpoint.
    view = (await executor.record_back_of("12345_pay_3")).json()
    assert (view["billing_connector"], view["status"], view["tries"]) == ("stripebilling", "accepted", 2)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in view["attempts"]] == [
        (1, 500, "retrying"),
        (2, 200, "accepted"),
    ]
    assert view["attempts"][1]["at"] == "2026-01-15T12:01:00.000Z"


async def test_an_invoice_already_paid_needs_no_record(executor: Executor, stripe_api: httpx.Client) -> None:
    invoice_id = open_invoice(stripe_api)
    pay_out_of_band(stripe_api, invoice_id)

    await executor.send(QUEUE, to_stripe_billing(invoice_id, "12345_pay_2"))

    assert executor.record_backs.progress["12345_pay_2"].status is RecordBackStatus.ACCEPTED
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


CHARGEBEE_ACCOUNT = "mca_chargebee"


def chargebee_account() -> Envelope[ConnectorAccountUpdated]:
    update = billing_account()
    payload = update.payload.model_copy(
        update={
            "connector_account_id": CHARGEBEE_ACCOUNT,
            "connector_name": "chargebee",
            "api_key": SecretBox.from_settings(SETTINGS).seal("test_chargebee_key"),
        }
    )
    return update.model_copy(update={"payload": payload, "message_id": "chargebee-account"})


def chargebee_invoice(sandbox: BackgroundServer) -> str:
    made = httpx.post(
        sandbox.url + "/chargebee/api/v2/invoices",
        data={"customer_id": "cb_1", "charges[amount][0]": "2250"},
        auth=("test_chargebee_key", ""),
    )
    return str(made.json()["invoice"]["id"])


def chargebee_status(sandbox: BackgroundServer, invoice_id: str) -> dict[str, Any]:
    got = httpx.get(sandbox.url + f"/chargebee/api/v2/invoices/{invoice_id}", auth=("test_chargebee_key", ""))
    return dict(got.json()["invoice"])


async def test_a_chargebee_invoice_is_recorded_paid_once_at_the_site(
    executor: Executor, sandbox: BackgroundServer
) -> None:
    await executor.send("executor.connector-account-updated", chargebee_account())
    invoice_id = chargebee_invoice(sandbox)
    request = to_stripe_billing(invoice_id, "12345_pay_cb")
    payload = request.payload.model_copy(
        update={
            "url": sandbox.url + "/chargebee",
            "billing_connector": "chargebee",
            "billing_connector_id": CHARGEBEE_ACCOUNT,
        }
    )

    await executor.send(QUEUE, request.model_copy(update={"payload": payload}))
    await executor.send(QUEUE, request.model_copy(update={"payload": payload, "message_id": "again"}))

    recorded = chargebee_status(sandbox, invoice_id)
    assert (recorded["status"], recorded["amount_paid"]) == ("paid", 2250)
    assert executor.record_backs.progress["12345_pay_cb"].status is RecordBackStatus.ACCEPTED
    view = (await executor.record_back_of("12345_pay_cb")).json()
    assert (view["billing_connector"], view["status"]) == ("chargebee", "accepted")
    assert [(a["attempt"], a["status_code"], a["error"]) for a in view["attempts"]] == [(1, 200, None)]
