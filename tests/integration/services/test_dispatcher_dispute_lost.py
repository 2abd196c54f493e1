"""The merchant's `dispute_lost` webhook against real RabbitMQ, the MongoDB-wire server and a real HTTP receiver:
consumed from `dispatcher.dispute-lost`, delivered signed once, stored as Hyperswitch's records (class `disputes`,
the dispute its object), listed by the events API by class, type, dispute and payment, and retried by hand."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import PaymentDisputeLost, ProfileUpdated
from recovery_dispatcher.app import build_service
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.settings import ServiceSettings
from recovery_sandbox.receiver import create_app as receiver_app
from support.broker import broker_probe, eventually
from support.disputes import dispute_lost
from support.payments import payment_succeeded, profile, recovery_payment
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

HASH_KEY = "a-profile-hash-key-for-disputes"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MERCHANT = "merchant_test"
TOKEN = ServiceSettings().internal_api_token
FAST = {"outbound_allowed_cidrs": "127.0.0.0/8", "webhook_total_timeout_seconds": 1.0}


def without_retries(url: str) -> Envelope[ProfileUpdated]:
    """The profile's endpoint at `url` with no durable retries: an event fails once its first delivery fails."""
    return envelope_for(
        MessageType.PROFILE_UPDATED,
        ProfileUpdated(
            profile_id="pro_test", merchant_id=MERCHANT, version=1, webhook_url=url, webhook_retry_schedule_seconds=()
        ),
        merchant_id=MERCHANT,
        profile_id="pro_test",
    )


def received(receiver: Any) -> list[dict[str, Any]]:
    return list(httpx.get(f"{receiver.url}/received").json())


def internal(dispatcher: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: MERCHANT}
    return httpx.request(method, f"{dispatcher.url}/internal/events/{MERCHANT}{path}", headers=headers, **kwargs)


def record_of(db: Any, message: Envelope[PaymentDisputeLost], *statuses: str) -> Any:
    key = idempotent_event_id(message.payload.dispute.dispute_id, "dispute_lost")
    found = db.webhook_events.find_one({"idempotent_event_id": key, "delivery_attempt": "initial_attempt"})
    return found if found is not None and found["status"] in statuses else None


async def test_a_lost_dispute_is_delivered_signed_once_stored_and_listed_by_class_type_and_object(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    dispatcher = serve(build_service(settings_for(DispatcherSettings, isolation, **FAST)))
    receiver = serve(receiver_app(hash_key=HASH_KEY, whsec_secret=WHSEC))
    paid = recovery_payment()
    message = dispute_lost(paid, datetime.now(UTC))
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(profile(f"{receiver.url}/webhooks", HASH_KEY, WHSEC))
        await broker.publish(payment_succeeded(paid))
        await eventually(lambda: len(received(receiver)) == 1)
        await broker.publish(message)
        await broker.publish(message.model_copy(update={"message_id": "the-same-dispute-published-again"}))
        record = await eventually(lambda: record_of(db, message, "delivered"))

    deliveries = received(receiver)
    assert len(deliveries) == 2
    delivery = deliveries[1]
    headers = {name.lower(): value for name, value in delivery["headers"]}
    body = delivery["body"].encode()
    # Checked with hashlib and the standardwebhooks package, independently of the dispatcher's code.
    assert headers["x-webhook-signature-512"] == hmac.new(HASH_KEY.encode(), body, hashlib.sha512).hexdigest()
    Webhook(WHSEC).verify(body, headers)
    parsed = json.loads(body)
    assert (parsed["event_type"], parsed["content"]["type"]) == ("dispute_lost", "dispute_details")
    assert list(parsed["content"]["object"]) == list(DisputeObject.model_fields)
    assert parsed["content"]["object"]["dispute_id"] == message.payload.dispute.dispute_id
    assert (headers["webhook-id"], headers["webhook-sequence"]) == (parsed["event_id"], "2")
    assert bytes(record["body"]) == body and record["event_id"] == parsed["event_id"]
    assert (record["event_class"], record["primary_object_type"]) == ("disputes", "dispute_details")
    assert (record["primary_object_id"], record["payment_id"]) == (message.payload.dispute.dispute_id, paid.payment_id)

    def listed(**constraints: Any) -> list[str]:
        answer = internal(dispatcher, "POST", "/list", json=constraints)
        assert answer.status_code == 200, answer.text
        return [event["event_id"] for event in answer.json()["events"]]

    event_id = record["event_id"]
    assert listed(event_classes=["disputes"]) == listed(event_types=["dispute_lost"]) == [event_id]
    assert listed(object_id=message.payload.dispute.dispute_id) == [event_id]
    assert event_id in listed(object_id=paid.payment_id) and len(listed(object_id=paid.payment_id)) == 2
    assert event_id not in listed(event_classes=["payments"])
    [attempt] = internal(dispatcher, "GET", f"/{event_id}/attempts").json()
    assert attempt["event_class"] == "disputes" and attempt["request"]["body"] == delivery["body"]


async def test_a_dispute_webhook_that_failed_for_good_is_sent_again_by_hand_with_its_id(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    dispatcher = serve(build_service(settings_for(DispatcherSettings, isolation, **FAST)))
    receiver = serve(receiver_app())
    httpx.post(
        f"{receiver.url}/_receiver/config", json={"behaviours": [{"status": 500, "times": 3}]}
    ).raise_for_status()
    message = dispute_lost(recovery_payment(), datetime.now(UTC))
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(without_retries(f"{receiver.url}/hook"))
        await broker.publish(message)
        record = await eventually(lambda: record_of(db, message, "failed"))

    answer = internal(dispatcher, "POST", f"/{record['event_id']}/retry")

    assert answer.status_code == 200, answer.text
    retried = answer.json()
    assert (retried["delivery_attempt"], retried["event_class"], retried["response"]["status_code"]) == (
        "manual_retry",
        "disputes",
        200,
    )
    assert retried["initial_attempt_id"] == record["event_id"]
    last = received(receiver)[-1]
    assert last["body"].encode() == bytes(record["body"])
    assert {name.lower(): value for name, value in last["headers"]}["webhook-id"] == record["event_id"]
