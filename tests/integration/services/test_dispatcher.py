"""The webhook dispatcher against real RabbitMQ, the MongoDB-wire server and a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id, new_attempt_id
from recovery_contracts.messages import PaymentSucceeded
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_dispatcher.app import build_service
from recovery_dispatcher.settings import DispatcherSettings
from recovery_sandbox.receiver import create_app as receiver_app
from support.broker import broker_probe, eventually
from support.payments import profile, recovery_payment
from support.services import settings_for
from support.stack import Isolation

HASH_KEY = "a-profile-hash-key-for-tests"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def dispatcher(serve: Any, isolation: Isolation) -> Any:
    return serve(build_service(settings_for(DispatcherSettings, isolation, webhook_allowed_cidrs="127.0.0.0/8")))


def succeeded() -> Envelope[PaymentSucceeded]:
    payment = recovery_payment()
    attempt_id = new_attempt_id("12345")
    now = datetime.now(UTC)
    return Envelope[PaymentSucceeded](
        type=MessageType.PAYMENT_SUCCEEDED,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=PaymentSucceeded(
            payment_id=payment.payment_id,
            attempt_id=attempt_id,
            attempt_number=1,
            token="pm_card_visa",
            connector_transaction_id="pi_123",
            succeeded_at=now,
            payment=build_payment_object(
                payment,
                status=IntentStatus.SUCCEEDED,
                modified_at=now,
                attempt=AttemptSummary(total_retry_count=2, token="pm_card_visa", connector_transaction_id="pi_123"),
            ),
        ),
    )


async def test_payment_succeeded_is_delivered_signed_once_and_recorded(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    receiver = serve(receiver_app(hash_key=HASH_KEY, whsec_secret=WHSEC))
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(profile(f"{receiver.url}/webhooks", HASH_KEY, WHSEC))
        await broker.publish(event)
        await broker.publish(event.model_copy(update={"message_id": "the-same-event-published-again"}))
        deliveries = await eventually(lambda: httpx.get(f"{receiver.url}/received").json())

    delivery = deliveries[0]
    headers = {k.lower(): v for k, v in delivery["headers"]}
    body = delivery["body"].encode()
    # Checked here with hashlib, independently of the dispatcher's signing code.
    expected = hmac.new(HASH_KEY.encode(), body, hashlib.sha512).hexdigest()
    assert headers["x-webhook-signature-512"] == expected
    assert delivery["standard_webhooks"]["valid"] is True
    parsed = json.loads(body)
    assert list(parsed) == ["merchant_id", "event_id", "event_type", "content", "timestamp"]
    assert parsed["event_type"] == "payment_succeeded"
    assert parsed["content"]["object"]["id"] == event.payload.payment_id
    assert headers["webhook-id"] == parsed["event_id"]

    record = await eventually(lambda: db.webhook_events.find_one({"_id": parsed["event_id"], "status": "delivered"}))
    assert record["idempotent_event_id"] == idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    assert record["is_overall_delivery_successful"] is True
    assert record["response"]["status_code"] == 200
    assert record["delivery_attempt"] == "initial_attempt"
    # The duplicate event made no second initial event and no second delivery.
    assert db.webhook_events.count_documents({}) == 1
    assert len(httpx.get(f"{receiver.url}/received").json()) == 1
