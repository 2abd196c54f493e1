"""Record back through a billing system's API, over real HTTP on loopback through the egress policy's client: a
successful retry marks the invoice paid out of band at Stripe Billing (the sandbox), records a payment at Chargebee
(the sandbox's `/chargebee`) or marks the invoice successful at Recurly (a scripted server), once, retried on timers
while the billing system fails."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecordBack
from recovery_executor.adapters.billing_systems import BillingSystemRecorder
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.domain.billing_systems import records_back, recurly_answer
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_executor.domain.messages import record_back_command
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.secrets import SecretBox
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

from .builders import billing_account, planned, record_back_at
from .fakes import INSTANCE, Executor, InMemoryConnectorAccounts, in_memory_executor

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
    http = guarded_http_client(EgressGuard(EgressPolicy.from_setting("127.0.0.0/8")))

    async def record(response: httpx.Response) -> None:
        stripe_answers.append(response)

    http.event_hooks = {"response": [record]}

    def billing_systems(accounts: ConnectorAccountRepository) -> BillingSystemRecorder:
        box = SecretBox.from_settings(SETTINGS)
        return BillingSystemRecorder(stripe_api_base=sandbox.url, http_client=http, box=box, accounts=accounts)

    running = in_memory_executor(billing_systems)
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        await running.send(
            "executor.connector-account-updated", billing_account(BILLING_ACCOUNT, "stripebilling", STRIPE_KEY)
        )
        yield running
    await http.aclose()


def open_invoice(api: httpx.Client) -> str:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": "2250", "currency": "usd"})
    invoice = api.post(
        "/v1/invoices", data={"customer": customer["id"], "pending_invoice_items_behavior": "include"}
    ).json()
    api.post(f"/v1/invoices/{invoice['id']}/finalize")
    return str(invoice["id"])


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
    request = record_back_at(invoice_id)

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

    await executor.send(QUEUE, record_back_at(invoice_id, "12345_pay_4"))

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

    await executor.send(QUEUE, record_back_at(invoice_id, "12345_pay_3"))
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

    await executor.send(QUEUE, record_back_at(invoice_id, "12345_pay_2"))

    assert executor.record_backs.progress["12345_pay_2"].status is RecordBackStatus.ACCEPTED
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


CHARGEBEE_ACCOUNT = "mca_chargebee"


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
    await executor.send(
        "executor.connector-account-updated", billing_account(CHARGEBEE_ACCOUNT, "chargebee", "test_chargebee_key")
    )
    invoice_id = chargebee_invoice(sandbox)
    request = record_back_at(
        invoice_id, "12345_pay_cb", system="chargebee", account=CHARGEBEE_ACCOUNT, url=sandbox.url + "/chargebee"
    )

    await executor.send(QUEUE, request)
    await executor.send(QUEUE, request.model_copy(update={"message_id": "again"}))

    recorded = chargebee_status(sandbox, invoice_id)
    assert (recorded["status"], recorded["amount_paid"]) == ("paid", 2250)
    assert executor.record_backs.progress["12345_pay_cb"].status is RecordBackStatus.ACCEPTED
    view = (await executor.record_back_of("12345_pay_cb")).json()
    assert (view["billing_connector"], view["status"]) == ("chargebee", "accepted")
    assert [(a["attempt"], a["status_code"], a["error"]) for a in view["attempts"]] == [(1, 200, None)]


RECURLY_ACCOUNT = "mca_recurly"
RECURLY_KEY = "recurly_private_key_1"
RECURLY_INVOICE = "inv_recurly_1"
RECURLY_HEADERS = ("authorization", "accept", "idempotency-key", "content-length", "content-type")
ALREADY_PAID = {"error": {"type": "invalid_transition", "message": "Invoice is already paid", "params": []}}


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedRecurly:
    """Recurly's API as the executor meets it on loopback: every request kept; the scripted answers, then 200 (the
    invoice, paid) once none is left."""

    def __init__(self) -> None:
        self.base = ""  # the account's record_back_url
        self.received: list[ReceivedRequest] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["GET", "POST", "PUT"])])

    async def _answer(self, request: Request) -> JSONResponse:
        self.received.append(
            ReceivedRequest(request.method, request.url.path, dict(request.headers), await request.body())
        )
        status, body = self.answers.pop(0) if self.answers else (200, {"object": "invoice", "state": "paid"})
        return JSONResponse(body, status_code=status)


@pytest.fixture
def recurly() -> Iterator[ScriptedRecurly]:
    scripted = ScriptedRecurly()
    with BackgroundServer(scripted.app) as server:
        scripted.base = server.url + "/recurly"
        yield scripted


def to_recurly(url: str, payment_id: str, invoice_id: str = RECURLY_INVOICE) -> Envelope[RecordBack]:
    return record_back_at(invoice_id, payment_id, system="recurly", account=RECURLY_ACCOUNT, url=url)


async def with_recurly_account(executor: Executor) -> None:
    await executor.send("executor.connector-account-updated", billing_account(RECURLY_ACCOUNT, "recurly", RECURLY_KEY))


def closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


@pytest.mark.parametrize("record_back_url", [None, "https://v3.eu.recurly.com"])
def test_a_successful_retry_of_a_recurly_invoice_is_recorded_back_through_recurlys_api(
    record_back_url: str | None,
) -> None:
    command = planned(
        billing_connector_name="recurly", billing_connector_id=RECURLY_ACCOUNT, record_back_url=record_back_url
    ).payload
    outcome = ChargeOutcome(ChargeOutcomeKind.SUCCEEDED, connector_transaction_id="ch_1")

    message = record_back_command(command, outcome, "cause").payload

    assert records_back(command.payment)  # with or without a record_back_url: not the custombilling callback
    assert (message.billing_connector, message.billing_connector_id, message.url) == (
        "recurly",
        RECURLY_ACCOUNT,
        record_back_url or "",
    )


async def test_a_recurly_invoice_is_marked_successful_once_with_the_accounts_key(
    executor: Executor, recurly: ScriptedRecurly
) -> None:
    await with_recurly_account(executor)
    request = to_recurly(recurly.base, "12345_pay_rc")

    await executor.send(QUEUE, request)
    await executor.send(QUEUE, request.model_copy(update={"message_id": "a-timer-fired-twice"}))

    [received] = recurly.received  # the copy found the record back accepted: no second call
    basic = base64.b64encode(f"{RECURLY_KEY}:".encode()).decode()
    assert (received.method, received.path, received.body) == (
        "PUT", f"/recurly/invoices/{RECURLY_INVOICE}/mark_successful", b"",
    )  # fmt: skip
    assert {name: received.headers.get(name) for name in RECURLY_HEADERS} == {
        "authorization": f"Basic {basic}",
        "accept": "application/vnd.recurly.v2021-02-25",
        "idempotency-key": "record-back:12345_pay_rc",
        "content-length": "0",
        "content-type": None,
    }
    assert executor.billing.calls == []  # not the custombilling callback
    [updated] = executor.published(MessageType.RECORD_BACK_UPDATED)
    assert (updated.payload.billing_connector, updated.payload.billing_connector_id, updated.payload.state) == (
        "recurly", RECURLY_ACCOUNT, "accepted",
    )  # fmt: skip


async def test_without_a_record_back_url_the_call_goes_to_recurlys_api_base() -> None:
    sent: list[httpx.Request] = []

    def recurly_api(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"object": "invoice", "state": "paid"})

    accounts = InMemoryConnectorAccounts()
    sealed = SecretBox.from_settings(SETTINGS).seal(RECURLY_KEY)
    accounts.accounts[RECURLY_ACCOUNT] = (1, ConnectorAccount(RECURLY_ACCOUNT, "recurly", sealed))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recurly_api)) as http:
        box = SecretBox.from_settings(SETTINGS)
        recorder = BillingSystemRecorder(stripe_api_base="", http_client=http, box=box, accounts=accounts)
        answer = await recorder.record_back(to_recurly("", "12345_pay_rd").payload, idempotency_key="record-back:x")

    assert answer == RecordBackAnswer(accepted=True, status_code=200)
    [request] = sent
    assert (request.method, str(request.url)) == (
        "PUT", f"https://v3.recurly.com/invoices/{RECURLY_INVOICE}/mark_successful",
    )  # fmt: skip


async def test_recurly_failing_is_retried_on_a_timer_under_the_same_idempotency_key(
    executor: Executor, recurly: ScriptedRecurly
) -> None:
    await with_recurly_account(executor)
    recurly.answers.append((500, {"error": {"type": "internal_server_error", "message": "try again"}}))

    await executor.send(QUEUE, to_recurly(recurly.base, "12345_pay_r5"))
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    executor.clock.advance(timedelta(minutes=1))
    await executor.send(QUEUE, Envelope[RecordBack].model_validate(timer.payload.message))

    assert [r.headers["idempotency-key"] for r in recurly.received] == ["record-back:12345_pay_r5"] * 2
    view = (await executor.record_back_of("12345_pay_r5")).json()
    assert (view["billing_connector"], view["status"]) == ("recurly", "accepted")
    assert [(a["status_code"], a["error"], a["outcome"]) for a in view["attempts"]] == [
        (500, "internal_server_error: try again", "retrying"),
        (200, None, "accepted"),
    ]


async def test_a_key_sent_before_keys_were_sealed_is_used_and_one_that_cannot_be_opened_is_a_kept_refusal(
    executor: Executor, recurly: ScriptedRecurly
) -> None:
    """A plain key (an old message, a document not resealed) is used as it is, as the charge path does; one sealed
    under a master key this executor no longer has is a refusal kept on the record and tried again on the timers,
    not an error that leaves no record at all."""
    plain = billing_account(RECURLY_ACCOUNT, "recurly", RECURLY_KEY)
    await executor.send(
        "executor.connector-account-updated",
        plain.model_copy(update={"payload": plain.payload.model_copy(update={"api_key": RECURLY_KEY})}),
    )
    await executor.send(QUEUE, to_recurly(recurly.base, "12345_pay_plain"))
    [received] = recurly.received
    assert received.headers["authorization"] == "Basic " + base64.b64encode(f"{RECURLY_KEY}:".encode()).decode()

    foreign = SecretBox({"retired": bytes(32)}, "retired")  # a master key this executor does not have
    sealed_elsewhere = plain.payload.model_copy(update={"api_key": foreign.seal(RECURLY_KEY), "version": 2})
    resealed = plain.model_copy(update={"payload": sealed_elsewhere, "message_id": "the-account-updated-again"})
    await executor.send("executor.connector-account-updated", resealed)
    await executor.send(QUEUE, to_recurly(recurly.base, "12345_pay_sealed_elsewhere"))

    [tried] = executor.record_backs.tries["12345_pay_sealed_elsewhere"]
    assert tried.outcome is RecordBackStatus.RETRYING and "cannot be opened" in (tried.error or "")
    assert len(recurly.received) == 1 and executor.publisher.dead_letters == []


async def test_a_recurly_refusal_is_kept_and_tried_again(executor: Executor, recurly: ScriptedRecurly) -> None:
    await with_recurly_account(executor)
    missing = {"error": {"type": "not_found", "message": f"Couldn't find Invoice with id = {RECURLY_INVOICE}"}}
    recurly.answers.append((404, missing))

    await executor.send(QUEUE, to_recurly(recurly.base, "12345_pay_r6"))

    [tried] = executor.record_backs.tries["12345_pay_r6"]
    assert (tried.status_code, tried.error, tried.outcome) == (
        404, f"not_found: Couldn't find Invoice with id = {RECURLY_INVOICE}", RecordBackStatus.RETRYING,
    )  # fmt: skip
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1


@pytest.mark.parametrize(
    ("status_code", "body", "expected"),
    [
        (200, {"object": "invoice", "state": "paid"}, RecordBackAnswer(accepted=True, status_code=200)),
        (422, ALREADY_PAID, RecordBackAnswer(accepted=True, status_code=422)),
        (
            422,
            {"error": {"type": "validation", "message": "Invoice is not collectible"}},
            RecordBackAnswer(accepted=False, status_code=422, error="validation: Invoice is not collectible"),
        ),
        (
            401,
            {"error": {"type": "unauthorized", "message": "Invalid API key"}},
            RecordBackAnswer(accepted=False, status_code=401, error="unauthorized: Invalid API key"),
        ),
        (502, {}, RecordBackAnswer(accepted=False, status_code=502, error="error: ")),
        (
            400,
            {"error": {"type": "bad_request", "message": "x" * 600}},
            RecordBackAnswer(accepted=False, status_code=400, error=("bad_request: " + "x" * 600)[:500]),
        ),
    ],
)
def test_recurlys_answers_read(status_code: int, body: dict[str, Any], expected: RecordBackAnswer) -> None:
    assert recurly_answer(status_code, body) == expected


async def test_an_unreachable_recurly_is_tried_again(executor: Executor) -> None:
    await with_recurly_account(executor)

    await executor.send(QUEUE, to_recurly(f"http://127.0.0.1:{closed_port()}/recurly", "12345_pay_r7"))

    [tried] = executor.record_backs.tries["12345_pay_r7"]
    assert (tried.status_code, tried.outcome) == (None, RecordBackStatus.RETRYING)
    assert (tried.error or "").startswith("ConnectError")


async def test_a_recurly_base_the_egress_policy_refuses_is_blocked_for_good(executor: Executor) -> None:
    await with_recurly_account(executor)

    await executor.send(QUEUE, to_recurly("http://10.0.0.1/recurly", "12345_pay_r8"))

    [tried] = executor.record_backs.tries["12345_pay_r8"]
    assert (tried.outcome, tried.error) == (
        RecordBackStatus.BLOCKED, "blocked: 10.0.0.1 is a private address (not in OUTBOUND_ALLOWED_CIDRS)",
    )  # fmt: skip
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


def recurly_sandbox_invoice(sandbox: BackgroundServer) -> str:
    made = httpx.post(sandbox.url + "/recurly/_sandbox/invoices", json={"account_code": "acct_1", "amount": 2250})
    return str(made.json()["id"])


def recurly_sandbox_state(sandbox: BackgroundServer, invoice_id: str) -> str:
    accept = {"Accept": "application/vnd.recurly.v2021-02-25"}
    got = httpx.get(sandbox.url + f"/recurly/invoices/{invoice_id}", headers=accept, auth=(RECURLY_KEY, ""))
    return str(got.json()["state"])


@pytest.mark.parametrize("paid_at_recurly_first", [False, True])
async def test_the_recurly_sandbox_takes_the_record_back_or_already_has_the_invoice_paid(
    executor: Executor, sandbox: BackgroundServer, paid_at_recurly_first: bool
) -> None:
    await with_recurly_account(executor)
    invoice_id = recurly_sandbox_invoice(sandbox)
    if paid_at_recurly_first:
        httpx.post(sandbox.url + f"/recurly/_sandbox/invoices/{invoice_id}/paid")
    payment_id = f"12345_pay_rs{int(paid_at_recurly_first)}"  # one sandbox for the module: a key per payment

    await executor.send(QUEUE, to_recurly(sandbox.url + "/recurly", payment_id, invoice_id))

    assert recurly_sandbox_state(sandbox, invoice_id) == "paid"
    [tried] = executor.record_backs.tries[payment_id]
    # Already paid: Recurly's 422 invalid_transition reads as accepted, nothing left to try.
    assert (tried.status_code, tried.outcome) == (422 if paid_at_recurly_first else 200, RecordBackStatus.ACCEPTED)
    assert executor.published(MessageType.SCHEDULE_TIMER) == []
