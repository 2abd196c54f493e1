"""Intake against real RabbitMQ and the MongoDB-wire server: the HTTP API, bad input, the broker entry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from recovery_cli.seed_scenario import Endpoints, MerchantSetup, SeedScenario
from recovery_contracts.api.recovery import RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import PaymentSucceeded, RecoveryCancelRequested, RecoveryRequested
from recovery_contracts.payments import ConnectorTransmission, IntentStatus
from recovery_contracts.recovery import AttemptSummary, RecoveryPayment, build_payment_object
from recovery_intake.adapters.intents import IntentRepository
from recovery_intake.adapters.saved_cards import SavedCardRepository
from recovery_intake.app import build_service
from recovery_intake.domain.card_backfill import SavedCard
from recovery_intake.settings import IntakeSettings
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.stripe import create_app as stripe_app
from support.broker import broker_probe, eventually
from support.services import settings_for
from support.stack import Isolation, recovery_body

ADMIN = "test_admin_key"


@pytest.fixture
def intake(serve: Any, isolation: Isolation) -> Any:
    return serve(build_service(settings_for(IntakeSettings, isolation, admin_api_key=ADMIN)))


@pytest.fixture
def tenant(serve: Any, intake: Any) -> tuple[SeedScenario, MerchantSetup]:
    stripe = serve(stripe_app())
    receiver = serve(receiver_app())
    scenario = SeedScenario(Endpoints(intake.url, stripe.url, receiver.url, ADMIN), say=lambda _: None)
    return scenario, scenario.bootstrap()


def assert_error(response: httpx.Response, status: int, code: str, *mentions: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    text = f"{error['message']} {error.get('reason') or ''}"
    for mention in mentions:
        assert mention in text, f"{mention!r} not in {text!r}"
    return error


async def test_seed_recovery_is_accepted_persisted_and_published(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    _, setup = tenant
    response = httpx.post(f"{intake.url}/v2/payments/recovery", json=recovery_body(setup), headers=setup.headers())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"id", "intent_status", "merchant_reference_id"}
    assert answer["merchant_reference_id"] == "test_ffhgfewf3476f5"
    assert answer["id"].startswith("12345_pay_") and len(answer["id"].split("_pay_")[1]) == 32

    intent = db.payment_intents.find_one({"_id": answer["id"]})
    assert intent["snapshot"]["tokens"][0]["last_four_digits"] == "1997"
    async with broker_probe(isolation.rabbitmq_url) as broker:
        message = await broker.take_json("scheduler.recovery-scheduled")
    assert message["type"] == "recovery.scheduled"
    # Written with the intent in one insert (embedded outbox), removed from it once published.
    await eventually(lambda: db.payment_intents.find_one({"_id": answer["id"]}).get("outbox") == [])
    assert message["correlation_id"] == answer["id"]
    assert message["payload"]["payment"]["retry"]["algorithm"] == "cascading"
    assert message["payload"]["payment"]["retry"]["max_retry_count"] == 9

    # The same invoice again is the same payment (get-or-create), not a second recovery.
    again = httpx.post(f"{intake.url}/v2/payments/recovery", json=recovery_body(setup), headers=setup.headers())
    assert again.json()["id"] == answer["id"]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        assert await broker.depth("scheduler.recovery-scheduled") == 0


async def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_stored(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    _, setup = tenant
    url = f"{intake.url}/v2/payments/recovery"
    headers = {**setup.headers(), "content-type": "application/json"}

    malformed = httpx.post(url, content=b'{"amount_details": {"order_amount": 2250,', headers=headers)
    assert_error(malformed, 400, "IR_06", "Json deserialize error")

    wrong_type = recovery_body(setup, amount_details={"order_amount": "lots", "currency": "USD"})
    assert_error(httpx.post(url, json=wrong_type, headers=headers), 400, "IR_06", "amount_details.order_amount")

    unknown_field = recovery_body(setup, surprise=1)
    assert_error(httpx.post(url, json=unknown_field, headers=headers), 400, "IR_06", "surprise")

    bad_enum = recovery_body(setup, action="retry_now")
    assert_error(httpx.post(url, json=bad_enum, headers=headers), 400, "IR_06", "action")

    unknown_account = recovery_body(setup, billing_merchant_connector_id="mca_doesnotexist0000000")
    assert_error(httpx.post(url, json=unknown_account, headers=headers), 404, "HE_02", "mca_doesnotexist0000000")

    no_key = {k: v for k, v in headers.items() if k != "api-key"}
    assert_error(httpx.post(url, json=recovery_body(setup), headers=no_key), 401, "IR_01", "api-key")
    wrong_key = {**headers, "api-key": "snd_not-a-key"}
    assert_error(httpx.post(url, json=recovery_body(setup), headers=wrong_key), 401, "IR_01")
    other_merchant = {**headers, "x-merchant-id": "someone_else"}
    assert_error(httpx.post(url, json=recovery_body(setup), headers=other_merchant), 401, "IR_01", "x-merchant-id")
    no_profile = {k: v for k, v in headers.items() if k != "x-profile-id"}
    assert_error(httpx.post(url, json=recovery_body(setup), headers=no_profile), 400, "IR_04", "x-profile-id")

    assert db.payment_intents.count_documents({}) == 0
    # The set-up's own events (profile, connector accounts) leave the outbox once published (removal is batched).
    await eventually(lambda: db.outbox_intake.count_documents({}) == 0, timeout=10)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        assert await broker.depth("scheduler.recovery-scheduled") == 0


async def test_a_change_made_with_a_key_is_an_audit_entry_read_back_through_the_api(tenant: Any, intake: Any) -> None:
    _, setup = tenant
    created = httpx.post(
        f"{intake.url}/v2/api-keys", json={"name": "reporting", "expiration": "never"}, headers=setup.headers()
    )
    listed = httpx.get(f"{intake.url}/v2/audit-events", params={"limit": 1}, headers=setup.headers())

    assert created.status_code == 200, created.text
    assert listed.status_code == 200, listed.text
    [newest] = listed.json()["data"]
    assert newest["key_id"] is not None and newest["key_id"].startswith("key_")
    assert (newest["merchant_id"], newest["actor"], newest["method"], newest["route"], newest["status_code"]) == (
        setup.merchant_id,
        "api_key",
        "POST",
        "/v2/api-keys",
        200,
    )


async def test_authorization_header_form_of_the_api_key_is_accepted(tenant: Any, intake: Any) -> None:
    _, setup = tenant
    headers = {**setup.headers(), "authorization": f"api-key={setup.api_key}"}
    del headers["api-key"]
    response = httpx.post(f"{intake.url}/v2/payments/recovery", json=recovery_body(setup), headers=headers)
    assert response.status_code == 200, response.text


async def test_an_intent_keeps_only_the_latest_requests_of_its_invoice(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    intake = serve(build_service(settings_for(IntakeSettings, isolation, admin_api_key=ADMIN, intent_requests_kept=3)))
    endpoints = Endpoints(intake.url, serve(stripe_app()).url, serve(receiver_app()).url, ADMIN)
    scenario = SeedScenario(endpoints, say=lambda _: None)
    setup = scenario.bootstrap()
    url = f"{intake.url}/v2/payments/recovery"
    answers = [
        httpx.post(url, json=recovery_body(setup, connector_transaction_id=f"tx_{n}"), headers=setup.headers())
        for n in range(7)
    ]
    assert {a.status_code for a in answers} == {200} and len({a.json()["id"] for a in answers}) == 1
    stored = db.payment_intents.find_one({"_id": answers[0].json()["id"]})
    assert [r["connector_transaction_id"] for r in stored["requests"]] == ["tx_4", "tx_5", "tx_6"]


async def test_broker_entry_dead_letters_bad_messages_with_the_reason_and_keeps_consuming(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    _, setup = tenant
    good = Envelope[RecoveryRequested](
        type=MessageType.RECOVERY_REQUESTED,
        merchant_id=setup.merchant_id,
        profile_id=setup.profile_id,
        correlation_id="test_ffhgfewf3476f5",
        payload=RecoveryRequested(request=RecoveryPaymentsCreate.model_validate(recovery_body(setup))),
    )
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish_raw(b"{not json", "recovery.commands", "recovery.requested")
        wrong_shape = json.loads(good.model_dump_json())
        wrong_shape["payload"]["request"]["amount_details"]["order_amount"] = -5
        await broker.publish_raw(json.dumps(wrong_shape).encode(), "recovery.commands", "recovery.requested")
        await broker.publish(good)

        dead = [await broker.take("intake.recovery-requested.dlq") for _ in range(2)]
        reasons = [m.headers["x-rejection-reason"] for m in dead]
        assert "invalid message" in reasons[0]
        assert "payload.request.amount_details.order_amount" in reasons[1]
        assert dead[0].body == b"{not json"

        scheduled = await broker.take_json("scheduler.recovery-scheduled")
        assert scheduled["payload"]["payment"]["merchant_reference_id"] == "test_ffhgfewf3476f5"
        assert await broker.depth("intake.recovery-requested.dlq") == 0
    await eventually(lambda: db.payment_intents.count_documents({"merchant_id": setup.merchant_id}) == 1)


async def test_a_cancel_by_reference_from_another_service_waits_for_its_invoice_then_cancels_it(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    """The cancel overtakes its invoice's recovery.requested (another queue): handed back until the invoice is
    there, then applied; a cancel naming no owner is dead-lettered with the reason."""
    _, setup = tenant
    reference = "invoice_cancelled_early"
    cancel = Envelope[RecoveryCancelRequested](
        type=MessageType.RECOVERY_CANCEL_REQUESTED,
        merchant_id=setup.merchant_id,
        profile_id=setup.profile_id,
        correlation_id=reference,
        payload=RecoveryCancelRequested(merchant_reference_id=reference),
    )
    ownerless = Envelope[RecoveryCancelRequested](
        type=MessageType.RECOVERY_CANCEL_REQUESTED, profile_id=setup.profile_id, payload=cancel.payload
    )
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(ownerless)
        await broker.publish(cancel)
        dead = await broker.take("intake.recovery-cancel-requested.dlq")
        assert "needs merchant_id and profile_id" in dead.headers["x-rejection-reason"]
        await asyncio.sleep(0.5)  # the cancel has been handed back at least once
        body = recovery_body(setup, merchant_reference_id=reference)
        created = httpx.post(f"{intake.url}/v2/payments/recovery", json=body, headers=setup.headers())
        assert created.status_code == 200, created.text

        updated = await broker.take_json("scheduler.recovery-updated")
        assert (updated["payload"]["action"], updated["payload"]["by_merchant"]) == ("cancel_invoice", True)
    await eventually(lambda: db.payment_intents.find_one({"_id": created.json()["id"]})["status"] == "cancelled")


async def test_a_message_left_in_an_intent_is_relayed_and_a_repeated_outcome_applies_once(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    """A crash between the intent's insert and the publish leaves `recovery.scheduled` in the intent (embedded
    outbox): the relay publishes it. An outcome event applies once: its id is recorded in the intent itself."""
    _, setup = tenant
    response = httpx.post(f"{intake.url}/v2/payments/recovery", json=recovery_body(setup), headers=setup.headers())
    payment_id = response.json()["id"]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        message = await broker.take_json("scheduler.recovery-scheduled")
        await eventually(lambda: db.payment_intents.find_one({"_id": payment_id}).get("outbox") == [])
        # As if the service had died before publishing: the message is back in the intent, a minute old.
        stranded = {
            "_id": message["message_id"],
            "message_type": "recovery.scheduled",
            "body": json.dumps(message).encode(),
            "correlation_id": payment_id,
            "created_at": datetime.now(UTC) - timedelta(minutes=1),
        }
        db.payment_intents.update_one({"_id": payment_id}, {"$push": {"outbox": stranded}})
        relayed = await broker.take_json("scheduler.recovery-scheduled", timeout=15)
        assert relayed["message_id"] == message["message_id"]
        await eventually(lambda: db.payment_intents.find_one({"_id": payment_id}).get("outbox") == [])

        succeeded = payment_succeeded(message)
        for _ in range(3):
            await broker.publish(succeeded)  # the same message id: a redelivery
        await eventually(lambda: db.payment_intents.find_one({"_id": payment_id})["status"] == "succeeded")

        async def drained() -> bool:
            return await broker.depth("intake.payment-succeeded") == 0

        await eventually(drained)
        await asyncio.sleep(1.0)  # the last copies in flight are acknowledged
    intent = db.payment_intents.find_one({"_id": payment_id})
    assert intent["applied_messages"] == [f"intake.payment-succeeded:{succeeded.message_id}"]
    assert intent["payment_object"]["status"] == "succeeded"


def payment_succeeded(scheduled_message: dict[str, Any]) -> Envelope[PaymentSucceeded]:
    payment = RecoveryPayment.model_validate(scheduled_message["payload"]["payment"])
    now = datetime.now(UTC)
    return Envelope[PaymentSucceeded](
        type=MessageType.PAYMENT_SUCCEEDED,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=PaymentSucceeded(
            payment_id=payment.payment_id,
            attempt_id="12345_att_test",
            attempt_number=1,
            token=payment.tokens[0].token,
            connector_transaction_id="pi_test",
            succeeded_at=now,
            payment=build_payment_object(
                payment,
                status=IntentStatus.SUCCEEDED,
                modified_at=now,
                attempt=AttemptSummary(
                    total_retry_count=1,
                    token=payment.tokens[0].token,
                    connector_transaction_id="pi_test",
                    transmission=ConnectorTransmission.SUCCEEDED,
                ),
            ),
        ),
    )


async def test_a_card_data_backfill_updates_the_open_recoveries_in_mongodb_and_tells_the_scheduler(
    tenant: Any, intake: Any, isolation: Isolation, db: Any
) -> None:
    _, setup = tenant
    for reference in ("backfill_a", "backfill_b"):
        body = recovery_body(setup, merchant_reference_id=reference)
        created = httpx.post(f"{intake.url}/v2/payments/recovery", json=body, headers=setup.headers())
        assert created.status_code == 200, created.text
    # The card's retries before this system: yesterday (UTC), as a spreadsheet quotes a JSON cell.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    csv = (
        "customer_id_resp,token,exp_date,card_network,daily_retry_history\n"
        f'cus_test,pm_test,04/31,Mastercard,"{{""{yesterday}"": 3}}"\n'
        "cus_test,pm_other,,,\n"
    )

    answer = httpx.post(
        f"{intake.url}/v2/recovery/data-backfill",
        files={"file": ("cards.csv", csv.encode(), "text/csv")},
        headers=setup.headers(),
    )

    assert answer.status_code == 200, answer.text
    counts = ("processed_records", "failed_records", "updated_recoveries", "kept_for_later")
    assert {k: answer.json()[k] for k in counts} == {
        "processed_records": 2,
        "failed_records": 0,
        "updated_recoveries": 2,
        "kept_for_later": 1,  # pm_other: no open recovery holds it
    }
    stored = list(db.payment_intents.find({"merchant_id": setup.merchant_id}, {"snapshot.tokens": 1}))
    assert [
        (d["snapshot"]["tokens"][0]["card_exp_year"], d["snapshot"]["tokens"][0]["card_network"]) for d in stored
    ] == [("2031", "Mastercard")] * 2
    day_end = datetime.fromisoformat(yesterday).replace(tzinfo=UTC) + timedelta(days=1)
    for d in stored:
        [prior] = d["snapshot"]["tokens"][0]["prior_retries"]
        assert prior["count"] == 3 and datetime.fromisoformat(prior["at"]) == day_end  # stored as JSON, as the rest
    # The look-up has its index, and the kept cards theirs (declared in code, created at start-up).
    assert "intent_customer" in {index["name"] for index in db.payment_intents.list_indexes()}
    [ttl] = [index for index in db.saved_cards.list_indexes() if index["name"] == "saved_card_ttl"]
    assert ttl["key"] == {"expires_at": 1} and ttl["expireAfterSeconds"] == 0
    async with broker_probe(isolation.rabbitmq_url) as broker:
        updates = [await broker.take_json("scheduler.recovery-updated") for _ in range(2)]
    assert {u["payload"]["action"] for u in updates} == {"card_data_backfill"}
    assert {u["payload"]["payment"]["merchant_reference_id"] for u in updates} == {"backfill_a", "backfill_b"}
    assert [u["payload"]["payment"]["tokens"][0]["prior_retries"] for u in updates] == [
        [{"at": day_end.isoformat().replace("+00:00", "Z"), "count": 3}]
    ] * 2


class _Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.finds += event.command_name == "find" and event.command.get("find") == "payment_intents"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_backfills_look_up_asks_for_hundreds_of_customers_at_once(
    mongodb_url: str, mongodb_database: str
) -> None:
    listener = _Finds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, event_listeners=[listener], tz_aware=True)
    try:
        intents = client[mongodb_database]["payment_intents"]
        snapshot = {"connector_customer_id": "cus_0007", "tokens": [{"token": "pm_a"}, {"token": "pm_b"}]}
        rows = (("p1", "m1", "inv_1", "failed"), ("p2", "m1", "inv_2", "succeeded"), ("p3", "m2", "inv_3", "failed"))
        await intents.insert_many(
            [
                {"_id": i, "merchant_id": m, "merchant_reference_id": ref, "status": status, "snapshot": snapshot}
                for i, m, ref, status in rows
            ]
        )
        cards = {(f"cus_{n:04d}", "pm_a") for n in range(1200)} | {("cus_0007", "pm_b"), ("cus_0007", "pm_z")}
        listener.finds = 0

        found = await IntentRepository(client[mongodb_database]).open_with_tokens("m1", cards)

        # The open invoice of m1 only (not the paid one, not another merchant's), for each of its tokens asked for.
        assert found == {("cus_0007", "pm_a"): ["inv_1"], ("cus_0007", "pm_b"): ["inv_1"]}
        assert listener.finds == 3  # 1,200 customers, 500 a query
    finally:
        await client.close()


async def test_a_card_kept_from_an_upload_reaches_the_customers_next_recovery_through_mongodb(
    tenant: Any, intake: Any, isolation: Isolation, db: Any, adb: Any
) -> None:
    """Two uploads of a card no recovery holds yet merge in one `saved_cards` document keyed by merchant, customer
    and token; the customer's recovery accepted afterwards carries its history to the scheduler, and the card
    fields its request left empty. Another merchant's word on the same customer and token id is another card. The
    merchant reads and forgets the customer's kept cards."""
    _, setup = tenant
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    history = f'"{{""{yesterday}"": 2}}"'
    for csv in (
        f"customer_id_resp,token,clean_bank_name,daily_retry_history\ncus_test,pm_later,Chase,{history}\n",
        "customer_id_resp,token,exp_date,card_network\ncus_test,pm_later,04/31,Mastercard\n",
    ):
        answer = httpx.post(
            f"{intake.url}/v2/recovery/data-backfill",
            files={"file": ("cards.csv", csv.encode(), "text/csv")},
            headers=setup.headers(),
        )
        assert answer.status_code == 200 and answer.json()["kept_for_later"] == 1, answer.text
    [kept] = list(db.saved_cards.find({"_id.merchant_id": setup.merchant_id}))
    assert kept["_id"] == {"merchant_id": setup.merchant_id, "customer_id": "cus_test", "token": "pm_later"}
    assert kept["card"] == {
        "card_issuer": "Chase",
        "card_exp_month": "04",
        "card_exp_year": "2031",
        "card_network": "Mastercard",
    }
    assert kept["expires_at"] - kept["uploaded_at"] == timedelta(days=90)
    other = SavedCard("cus_test", "pm_later", {"card_network": "Discover"}, (), datetime.now(UTC))
    await SavedCardRepository(adb).save("merchant_other", [other])
    assert db.saved_cards.count_documents({"_id.token": "pm_later"}) == 2

    body = recovery_body(setup, merchant_reference_id="kept_card")
    body["payment_method_data"] = {"primary_processor_payment_method_token": "pm_later"}
    created = httpx.post(f"{intake.url}/v2/payments/recovery", json=body, headers=setup.headers())

    assert created.status_code == 200, created.text
    day_end = datetime.fromisoformat(yesterday).replace(tzinfo=UTC) + timedelta(days=1)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        scheduled = await broker.take_json("scheduler.recovery-scheduled")
    [token] = scheduled["payload"]["payment"]["tokens"]
    assert (token["token"], token["card_network"], token["card_issuer"], token["card_exp_year"]) == (
        "pm_later",
        "Mastercard",
        "Chase",
        "2031",
    )
    assert token["prior_retries"] == [{"at": day_end.isoformat().replace("+00:00", "Z"), "count": 2}]

    # The merchant reads the customer's kept cards (its own, not the other merchant's) and forgets them.
    cards = f"{intake.url}/v2/recovery/data-backfill/cards"
    shown = httpx.get(cards, params={"connector_customer_id": "cus_test"}, headers=setup.headers())
    assert shown.status_code == 200, shown.text
    assert [(c["token"], c["card_network"]) for c in shown.json()["cards"]] == [("pm_later", "Mastercard")]
    forgotten = httpx.delete(cards, params={"connector_customer_id": "cus_test"}, headers=setup.headers())
    assert forgotten.json() == shown.json()
    assert [d["_id"]["merchant_id"] for d in db.saved_cards.find({"_id.token": "pm_later"})] == ["merchant_other"]
    assert "saved_card_customer" in {index["name"] for index in db.saved_cards.list_indexes()}


async def test_a_merchant_that_never_uploaded_is_not_read_for_cards_and_its_first_upload_waits_out_every_cache(
    db: Any, adb: Any
) -> None:
    """Whether a merchant keeps uploaded cards is its document's `cards_kept_until`, which each intake instance
    keeps for the configuration cache's seconds, present or absent: a recovery request of a merchant that never
    uploaded reads no card. So the merchant's first upload returns only once every instance's copy may have gone
    (another instance, still holding "none", reads the card once it has), and an upload while cards are kept does
    not wait; after they expired, the next one waits again."""
    db.merchants.insert_many([{"_id": "merchant_kept"}, {"_id": "merchant_lapsed"}])
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    def instance() -> SavedCardRepository:
        return SavedCardRepository(adb, 30.0, sleep=sleep)

    one, other = instance(), instance()
    assert await other.get("merchant_kept", "cus_1", "pm_kept") is None  # "none" now held by the other instance
    # A card stored behind the repository's back is not read while the merchant keeps none: no read was made.
    db.saved_cards.insert_one({"_id": {"merchant_id": "merchant_kept", "customer_id": "cus_1", "token": "pm_kept"}})
    assert await other.get("merchant_kept", "cus_1", "pm_kept") is None
    db.saved_cards.delete_many({})
    now = datetime.now(UTC).replace(microsecond=0)
    card = SavedCard("cus_1", "pm_kept", {"card_network": "Visa"}, None, now)

    await one.save("merchant_kept", [card])

    assert waits == [30.0]
    assert db.merchants.find_one({"_id": "merchant_kept"})["cards_kept_until"] == now + timedelta(days=90)
    assert await other.get("merchant_kept", "cus_1", "pm_kept") is None  # the copy the wait outlasts
    assert await one.get("merchant_kept", "cus_1", "pm_kept") == card
    assert await instance().get("merchant_kept", "cus_1", "pm_kept") == card
    await one.save("merchant_kept", [card])
    assert waits == [30.0]
    # Cards kept until a time past: kept no more, the next upload waits again.
    db.merchants.update_one({"_id": "merchant_lapsed"}, {"$set": {"cards_kept_until": now - timedelta(days=1)}})
    await instance().save("merchant_lapsed", [card])
    assert waits == [30.0, 30.0]
    assert db.merchants.find_one({"_id": "merchant_lapsed"})["cards_kept_until"] == now + timedelta(days=90)
