"""A lost dispute recorded at Stripe Billing as a credit note of the invoice, its whole amount credited out of band,
over real HTTP on loopback through the egress policy's client, against the Stripe sandbox: the exact request on the
first try (nothing read first), the dispute's reason named only where Stripe has it, once even when an answer was
lost and the next try comes after Stripe forgot the idempotency key, and a refusal retried on the timers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.domain.billing_systems import stripe_credit_note_form
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

from .billing_apis import executor_at_billing_api, next_try, record_back_accepted, refund_first_try
from .builders import LOST_AT, billing_account, record_back_at
from .fakes import Executor

RECORD = "executor.record-back"
ACCOUNT, KEY = "mca_stripebilling", "sk_test_credit_notes_1"
PINNED = {"Stripe-Version": "2024-06-20"}


@pytest.fixture(scope="module")
def sandbox_app() -> FastAPI:
    return stripe.create_app()


@pytest.fixture
def api(sandbox: BackgroundServer) -> Iterator[httpx.Client]:
    """Stripe's API as the merchant (or a test) uses it."""
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {KEY}", **PINNED}) as client:
        yield client


@pytest.fixture
async def executor(
    sandbox: BackgroundServer, sent: list[httpx.Request], lost_answers: list[str]
) -> AsyncIterator[Executor]:
    account = billing_account(ACCOUNT, "stripebilling", KEY)
    async with executor_at_billing_api(account, sent, lost_answers, sandbox.url) as running:
        yield running


def open_invoice(api: httpx.Client, amount: int = 2250) -> str:
    customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
    api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": str(amount), "currency": "usd"})
    made = api.post("/v1/invoices", data={"customer": customer["id"], "pending_invoice_items_behavior": "include"})
    api.post(f"/v1/invoices/{made.json()['id']}/finalize")
    return str(made.json()["id"])


def invoice_of(api: httpx.Client, invoice_id: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/invoices/{invoice_id}").json())


def credit_by_hand(api: httpx.Client, invoice_id: str, amount: int) -> None:
    """A credit note the merchant issued themselves (out of band)."""
    form = {"invoice": invoice_id, "amount": str(amount), "out_of_band_amount": str(amount)}
    assert api.post("/v1/credit_notes", data=form).status_code == 200


def credit_notes_of(api: httpx.Client, invoice_id: str) -> list[dict[str, Any]]:
    return list(api.get("/v1/credit_notes", params={"invoice": invoice_id}).json()["data"])


async def lost(
    executor: Executor, api: httpx.Client, payment_id: str, amount: int = 2250, reason: str | None = "fraudulent"
) -> tuple[str, Envelope[RecordBack]]:
    """An invoice the executor recorded paid (out of band), then a dispute lost on the payment: the invoice, and the
    first try of the refund record as the executor emitted it."""
    invoice_id = open_invoice(api)
    await record_back_accepted(
        executor, record_back_at(invoice_id, payment_id, system="stripebilling", account=ACCOUNT)
    )
    return invoice_id, await refund_first_try(executor, payment_id, amount, reason)


def form_of(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


async def test_the_lost_dispute_is_a_credit_note_of_the_invoice_credited_out_of_band(
    executor: Executor, api: httpx.Client, sent: list[httpx.Request]
) -> None:
    invoice_id, refund = await lost(executor, api, "12345_pay_sb1")
    sent.clear()

    await executor.send(RECORD, refund)
    await executor.send(RECORD, refund.model_copy(update={"message_id": "a-timer-fired-twice"}))

    [call] = sent  # the first try reads nothing first; the copy found the record accepted
    assert (call.method, call.url.path) == ("POST", "/v1/credit_notes")
    assert form_of(call) == {
        "invoice": invoice_id,
        "amount": "2250",
        "out_of_band_amount": "2250",
        "reason": "fraudulent",
        "memo": "Dispute dp_lost_1 lost: fraudulent",
        "metadata[dispute_id]": "dp_lost_1",
        "metadata[payment_id]": "12345_pay_sb1",
    }
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.headers["idempotency-key"] == "record-back:12345_pay_sb1:dispute:dp_lost_1"
    assert call.headers["stripe-version"] == "2024-06-20"
    [note] = credit_notes_of(api, invoice_id)
    assert (note["amount"], note["out_of_band_amount"], note["type"], note["status"]) == (
        2250, 2250, "post_payment", "issued",
    )  # fmt: skip
    assert invoice_of(api, invoice_id)["post_payment_credit_notes_amount"] == 2250
    record = executor.record_backs.progress["12345_pay_sb1:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, note["id"])
    view = (await executor.record_back_of("12345_pay_sb1", dispute_id="dp_lost_1")).json()
    assert (view["billing_connector"], [(a["status_code"], a["outcome"]) for a in view["attempts"]]) == (
        "stripebilling", [(200, "accepted")],
    )  # fmt: skip


async def test_a_reason_stripe_has_no_credit_note_reason_for_is_not_sent(
    executor: Executor, api: httpx.Client, sent: list[httpx.Request]
) -> None:
    invoice_id, refund = await lost(executor, api, "12345_pay_sb2", reason="product_not_received")
    sent.clear()

    await executor.send(RECORD, refund)

    [call] = sent
    assert "reason" not in form_of(call)
    assert form_of(call)["memo"] == "Dispute dp_lost_1 lost: product_not_received"
    [note] = credit_notes_of(api, invoice_id)
    assert note["reason"] is None


@pytest.mark.parametrize(
    ("dispute_reason", "credit_note_reason"),
    [
        ("fraudulent", "fraudulent"),
        ("duplicate", None),
        ("product_unacceptable", None),
        ("general", None),
        (None, None),
    ],
)
def test_only_a_fraudulent_dispute_names_a_credit_note_reason(
    dispute_reason: str | None, credit_note_reason: str | None
) -> None:
    refund = DisputeRefund(dispute_id="dp_9", amount=100, currency="USD", reason=dispute_reason, lost_at=LOST_AT)

    form = stripe_credit_note_form(refund, "in_1", "12345_pay_9")

    assert form.get("reason") == credit_note_reason
    assert form["memo"] == "Dispute dp_9 lost" + (f": {dispute_reason}" if dispute_reason else "")


@pytest.mark.parametrize("amount", [1000, 1500], ids=["a-repeat-would-credit-twice", "a-repeat-would-be-refused"])
async def test_a_lost_answer_then_a_try_after_stripes_idempotency_window_credits_once(
    executor: Executor,
    api: httpx.Client,
    sandbox_app: FastAPI,
    sent: list[httpx.Request],
    lost_answers: list[str],
    amount: int,
) -> None:
    """Stripe issued the credit note but its answer was lost; the next try comes after Stripe forgot the key (24 h;
    the sandbox's memory of keys cleared). Asked again, Stripe would issue a second one (1000 of 2250), or refuse one
    above what is left (1500: tried until abandoned, though recorded). The later try finds the note instead."""
    invoice_id, refund = await lost(executor, api, f"12345_pay_sb_{amount}", amount=amount)
    lost_answers.append("/v1/credit_notes")
    await executor.send(RECORD, refund)
    [tried] = executor.record_backs.tries[f"12345_pay_sb_{amount}:dispute:dp_lost_1"]
    assert (tried.status_code, tried.outcome) == (None, RecordBackStatus.RETRYING)  # no answer came
    sandbox_app.state.stripe.idempotency.clear()  # Stripe's window over
    executor.clock.advance(timedelta(hours=25))
    sent.clear()

    await executor.send(RECORD, next_try(executor))

    [look] = sent  # nothing asked again
    assert (look.method, look.url.path, look.url.params["invoice"]) == ("GET", "/v1/credit_notes", invoice_id)
    [note] = credit_notes_of(api, invoice_id)
    assert (note["amount"], note["metadata"]["dispute_id"]) == (amount, "dp_lost_1")
    record = executor.record_backs.progress[f"12345_pay_sb_{amount}:dispute:dp_lost_1"]
    assert (record.status, record.billing_transaction_id) == (RecordBackStatus.ACCEPTED, note["id"])
    assert executor.published(MessageType.SCHEDULE_TIMER) == []


async def test_a_credit_note_stripe_refuses_is_tried_again_on_the_timers(
    executor: Executor, api: httpx.Client, sent: list[httpx.Request]
) -> None:
    """The merchant credited most of the invoice by hand before: Stripe refuses more than what is left; the refusal
    is kept and tried again (the merchant may void theirs), each later try looking first."""
    invoice_id, refund = await lost(executor, api, "12345_pay_sb3")
    credit_by_hand(api, invoice_id, 2000)

    await executor.send(RECORD, refund)
    again = next_try(executor)
    executor.clock.advance(timedelta(minutes=1))
    sent.clear()
    await executor.send(RECORD, again)

    tries = executor.record_backs.tries["12345_pay_sb3:dispute:dp_lost_1"]
    assert [(t.status_code, t.outcome) for t in tries] == [(400, RecordBackStatus.RETRYING)] * 2
    assert tries[0].error is not None and tries[0].error.startswith("invalid_request_error: The credit note's amount")
    assert [(r.method, r.url.path) for r in sent] == [("GET", "/v1/credit_notes"), ("POST", "/v1/credit_notes")]
    assert len(credit_notes_of(api, invoice_id)) == 1  # the merchant's only
    assert len(executor.published(MessageType.SCHEDULE_TIMER)) == 1
