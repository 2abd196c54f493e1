"""A lost dispute recorded at Chargebee as a refund, at Stripe Billing as a credit note and at Recurly as a refund of
the invoice (a credit invoice), against real RabbitMQ, the MongoDB-wire server and the sandboxes over HTTP; and the
record-back store under it: the refund's record beside the payment's, created once however many executors try at
once, and records stored before refunds existed still read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ConnectorAccountUpdated, PaymentDisputeLost, RecordBack
from recovery_executor.adapters.record_backs import RECORD_BACKS, MongoRecordBackRepository
from recovery_executor.app import build_service
from recovery_executor.domain.record_back import RecordBackProgress, RecordBackStatus, RecordBackTry
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.clock import SystemClock
from recovery_runtime.secrets import SecretBox
from recovery_runtime.testing import RecordingPublisher
from recovery_runtime.unit_of_work import Transaction, UnitOfWork
from recovery_sandbox import chargebee, recurly, stripe
from support.broker import broker_probe, eventually
from support.disputes import dispute_lost
from support.payments import record_back, recovery_payment
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

ACCOUNT, KEY = "mca_chargebee", "test_chargebee_key"
STRIPE_ACCOUNT, STRIPE_KEY = "mca_stripebilling", "sk_test_dispute_refund_1"
RECURLY_ACCOUNT, RECURLY_KEY = "mca_recurly", "recurly_dispute_refund_key"
PAYMENT = "12345_pay_1"
REFUND = f"{PAYMENT}:dispute:dp_lost_1"


def billing_account(
    settings: ExecutorSettings, account: str = ACCOUNT, name: str = "chargebee", key: str = KEY
) -> Envelope[ConnectorAccountUpdated]:
    return envelope_for(
        MessageType.CONNECTOR_ACCOUNT_UPDATED,
        ConnectorAccountUpdated(
            connector_account_id=account,
            merchant_id="merchant_test",
            profile_id="pro_test",
            version=1,
            connector_type="billing_processor",
            connector_name=name,
            api_key=SecretBox.from_settings(settings).seal(key),
        ),
        merchant_id="merchant_test",
        profile_id="pro_test",
    )


def record_back_to(
    site: str, invoice_id: str, system: str = "chargebee", account: str = ACCOUNT
) -> Envelope[RecordBack]:
    generic = record_back(PAYMENT)
    body = generic.payload.body.model_copy(update={"merchant_reference_id": invoice_id})
    payload = generic.payload.model_copy(
        update={"url": site, "body": body, "billing_connector": system, "billing_connector_id": account}
    )
    return generic.model_copy(update={"payload": payload})


def refunds_at(site: str, invoice_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=site, auth=(KEY, "")) as cb:
        [payment] = cb.get(f"/api/v2/invoices/{invoice_id}/payments").json()["list"]
        return list(payment["transaction"]["linked_refunds"])


def new_invoice(site: str) -> str:
    made = httpx.post(
        f"{site}/api/v2/invoices", data={"customer_id": "cb_1", "charges[amount][0]": "2250"}, auth=(KEY, "")
    )
    return str(made.json()["invoice"]["id"])


async def recorded_then_refunded_once(
    isolation: Isolation,
    db: Any,
    account: Envelope[ConnectorAccountUpdated],
    payment_record: Envelope[RecordBack],
    lost: Envelope[PaymentDisputeLost],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The billing account projected, the payment recorded back, then the dispute `lost` reported twice (a copy under
    another message id): exactly one try of its refund record, accepted, with the dispute's id, and no second. The
    payment's try and the refund's (`record-back.updated`)."""
    dispute_id = lost.payload.dispute.dispute_id
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(account)
        await eventually(lambda: db.connector_credentials.find_one({"_id": account.payload.connector_account_id}))
        await broker.publish(payment_record)
        payment_try = await broker.take_json("analytics.record-back-updated")

        await broker.publish(lost)
        await broker.publish(lost.model_copy(update={"message_id": "another-event-of-the-dispute"}))
        refund_try = await broker.take_json("analytics.record-back-updated")
        assert (refund_try["payload"]["state"], refund_try["payload"]["dispute_id"]) == ("accepted", dispute_id)
        await eventually(lambda: _drained(broker, "executor.dispute-lost"))
        with pytest.raises(AssertionError, match="no message"):
            await broker.take_json("analytics.record-back-updated", timeout=3)  # no second refund, no second try
    return payment_try, refund_try


async def test_a_lost_dispute_is_recorded_at_chargebee_once_beside_the_payments_record_back(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    site = serve(chargebee.create_app())
    settings = settings_for(ExecutorSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8")
    serve(build_service(settings))
    invoice_id = new_invoice(site.url)
    lost = dispute_lost(recovery_payment(payment_id=PAYMENT), datetime.now(UTC))
    dispute_id = lost.payload.dispute.dispute_id
    payment_try, _ = await recorded_then_refunded_once(
        isolation, db, billing_account(settings), record_back_to(site.url, invoice_id), lost
    )
    assert (payment_try["payload"]["state"], payment_try["payload"].get("dispute_id")) == ("accepted", None)

    [refund] = refunds_at(site.url, invoice_id)
    assert refund["txn_amount"] == 2250
    refund_key = f"{PAYMENT}:dispute:{dispute_id}"
    payment, recorded = db[RECORD_BACKS].find_one({"_id": PAYMENT}), db[RECORD_BACKS].find_one({"_id": refund_key})
    assert payment["status"] == "accepted" and payment["billing_transaction_id"].startswith("txn_")
    assert (recorded["payment_id"], recorded["dispute_id"], recorded["status"]) == (PAYMENT, dispute_id, "accepted")
    assert recorded["billing_transaction_id"] == refund["txn_id"] and len(recorded["tries"]) == 1
    assert db[RECORD_BACKS].count_documents({}) == 2


def open_stripe_invoice(base: str) -> str:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {STRIPE_KEY}"}) as api:
        customer = api.post("/v1/customers", data={"email": "payer@example.com"}).json()
        api.post("/v1/invoiceitems", data={"customer": customer["id"], "amount": "2250", "currency": "usd"})
        made = api.post("/v1/invoices", data={"customer": customer["id"], "pending_invoice_items_behavior": "include"})
        api.post(f"/v1/invoices/{made.json()['id']}/finalize")
        return str(made.json()["id"])


def credit_notes_at(base: str, invoice_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {STRIPE_KEY}"}) as api:
        return list(api.get("/v1/credit_notes", params={"invoice": invoice_id}).json()["data"])


async def test_a_lost_dispute_is_credited_at_stripe_billing_once(serve: Any, isolation: Isolation, db: Any) -> None:
    sandbox = serve(stripe.create_app())
    settings = settings_for(
        ExecutorSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8", stripe_api_base=sandbox.url
    )
    serve(build_service(settings))
    invoice_id = open_stripe_invoice(sandbox.url)
    lost = dispute_lost(recovery_payment(payment_id=PAYMENT), datetime.now(UTC))
    dispute_id = lost.payload.dispute.dispute_id
    account = billing_account(settings, STRIPE_ACCOUNT, "stripebilling", STRIPE_KEY)
    payment_try, refund_try = await recorded_then_refunded_once(
        isolation, db, account, record_back_to("", invoice_id, "stripebilling", STRIPE_ACCOUNT), lost
    )
    assert payment_try["payload"]["state"] == "accepted"
    assert refund_try["payload"]["billing_connector"] == "stripebilling"

    [note] = credit_notes_at(sandbox.url, invoice_id)
    assert (note["amount"], note["out_of_band_amount"], note["metadata"]["dispute_id"]) == (2250, 2250, dispute_id)
    recorded = db[RECORD_BACKS].find_one({"_id": f"{PAYMENT}:dispute:{dispute_id}"})
    assert (recorded["status"], recorded["billing_transaction_id"]) == ("accepted", note["id"])


def recurly_api(base: str) -> httpx.Client:
    accept = {"Accept": "application/vnd.recurly.v2021-02-25"}
    return httpx.Client(base_url=base, auth=(RECURLY_KEY, ""), headers=accept)


def open_recurly_invoice(base: str) -> str:
    with recurly_api(base) as api:
        return str(api.post("/_sandbox/invoices", json={"account_code": "acct-1", "amount": 2250}).json()["id"])


def credit_invoices_at(base: str, invoice_id: str) -> list[dict[str, Any]]:
    with recurly_api(base) as api:
        return list(api.get(f"/invoices/{invoice_id}/related_invoices").json()["data"])


async def test_a_lost_dispute_is_refunded_at_recurly_once(serve: Any, isolation: Isolation, db: Any) -> None:
    site = serve(recurly.create_app())
    settings = settings_for(ExecutorSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8")
    serve(build_service(settings))
    invoice_id = open_recurly_invoice(site.url)
    lost = dispute_lost(recovery_payment(payment_id=PAYMENT), datetime.now(UTC))
    dispute_id = lost.payload.dispute.dispute_id
    account = billing_account(settings, RECURLY_ACCOUNT, "recurly", RECURLY_KEY)
    payment_try, refund_try = await recorded_then_refunded_once(
        isolation, db, account, record_back_to(site.url, invoice_id, "recurly", RECURLY_ACCOUNT), lost
    )
    assert payment_try["payload"]["state"] == "accepted"
    assert refund_try["payload"]["billing_connector"] == "recurly"

    [credit] = credit_invoices_at(site.url, invoice_id)
    note = f"Dispute {dispute_id} lost: fraudulent"
    assert (credit["total"], credit["customer_notes"], credit["transactions"][0]["description"]) == (-22.5, note, note)
    recorded = db[RECORD_BACKS].find_one({"_id": f"{PAYMENT}:dispute:{dispute_id}"})
    assert (recorded["status"], recorded["billing_transaction_id"]) == ("accepted", credit["id"])


@pytest.fixture
async def store(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    """The record-back repository and a unit of work on the test's database (transactions as the service's)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    db = client[mongodb_database]
    yield MongoRecordBackRepository(db), UnitOfWork(client, db, "executor", RecordingPublisher(), SystemClock()), db
    await client.close()


def refund_record(now: datetime) -> RecordBackProgress:
    request = record_back(PAYMENT).payload
    return RecordBackProgress(
        PAYMENT, RecordBackStatus.RETRYING, request.url, 0, now, merchant_id="merchant_test", request=request,
        dispute_id="dp_lost_1",
    )  # fmt: skip


async def test_a_refund_record_is_created_once_when_executors_race(store: Any) -> None:
    records, unit_of_work, _ = store
    record = refund_record(datetime.now(UTC))

    async def create(tx: Transaction) -> bool:
        return bool(await records.create(record, tx))

    made = await asyncio.gather(*(unit_of_work.apply(create, inbox=False) for _ in range(4)))

    assert sorted(made) == [False, False, False, True]
    found = await records.get(REFUND)
    assert (found.payment_id, found.dispute_id, found.attempts, found.key) == (PAYMENT, "dp_lost_1", 0, REFUND)
    assert await records.get(PAYMENT) is None  # beside the payment's record back, not in its place
    assert (await records.history("merchant_test", PAYMENT, "dp_lost_1")).tries == ()


async def test_a_record_stored_before_refunds_reads_and_keeps_the_transaction_it_names(store: Any) -> None:
    records, _, db = store
    now = datetime.now(UTC).replace(microsecond=0)
    await db[RECORD_BACKS].insert_one(
        {"_id": PAYMENT, "status": "retrying", "url": "https://billing.example/record-back", "attempts": 1,
         "updated_at": now, "merchant_id": "merchant_test", "billing_connector": "chargebee", "tries": []}
    )  # fmt: skip

    old = await records.get(PAYMENT)
    assert (old.payment_id, old.dispute_id, old.billing_transaction_id, old.key) == (PAYMENT, None, None, PAYMENT)

    tx = Transaction.one_document()
    accepted = RecordBackProgress(
        PAYMENT, RecordBackStatus.ACCEPTED, old.url, 2, now, merchant_id="merchant_test",
        billing_connector="chargebee", billing_transaction_id="txn_1",
    )  # fmt: skip
    await records.save(accepted, RecordBackTry(2, now, 200, None, RecordBackStatus.ACCEPTED), tx)
    # A later save naming no transaction never erases the one an accepted try named.
    again = RecordBackProgress(PAYMENT, RecordBackStatus.ACCEPTED, old.url, 3, now, merchant_id="merchant_test")
    await records.save(again, RecordBackTry(3, now, 400, None, RecordBackStatus.ACCEPTED), tx)

    kept = await records.history("merchant_test", PAYMENT)
    assert (kept.progress.billing_transaction_id, len(kept.tries)) == ("txn_1", 2)


async def _drained(broker: Any, queue: str) -> bool:
    return bool(await broker.depth(queue) == 0)
