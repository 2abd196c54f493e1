"""Claims of initial webhook events (`webhook_claims`): a dispatcher that died between claiming an event and
recording it, and the per-payment numbering, against real RabbitMQ, the MongoDB-wire server and HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import PaymentSucceeded, ProfileUpdated
from recovery_dispatcher.app import build_service
from recovery_dispatcher.domain.ids import initial_event_id, record_key
from recovery_dispatcher.domain.outgoing_webhook import build_body
from recovery_dispatcher.settings import DispatcherSettings
from recovery_sandbox.receiver import create_app as receiver_app
from support.broker import broker_probe, eventually
from support.payments import payment_succeeded, recovery_payment
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

MERCHANT, PROFILE = "merchant_claims", "pro_claims"


def endpoint(url: str) -> Envelope[ProfileUpdated]:
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=MERCHANT,
        profile_id=PROFILE,
        payload=ProfileUpdated(
            profile_id=PROFILE, merchant_id=MERCHANT, version=1, webhook_url=url, payment_response_hash_key="k"
        ),
    )


def received(receiver: Any) -> list[dict[str, Any]]:
    return httpx.get(f"{receiver.url}/received").json()


def orphan_claim(event: Envelope[PaymentSucceeded], *, lease_until: datetime, sequence: int = 1) -> dict[str, Any]:
    """What a dispatcher leaves when it dies after claiming an event and before recording it."""
    idempotent_id = idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    created = datetime.now(UTC) - timedelta(minutes=5)
    event_id = initial_event_id(idempotent_id, created)
    body = build_body(
        merchant_id=MERCHANT,
        event_id=event_id,
        event_type="payment_succeeded",
        content_type="payment_details",
        content_object=event.payload.payment.model_dump(mode="json"),
        timestamp=created,
    )
    payment_id = event.payload.payment_id
    return {
        "_id": f"{payment_id}#{sequence}",
        "idempotent_event_id": idempotent_id,
        "event_id": event_id,
        "payment_id": payment_id,
        "created_at": created,
        "body": body,
        "lease_until": lease_until,
        "lease_owner": "a-dispatcher-that-died",
        "sequence": sequence,
        "sequence_key": f"{payment_id}#{sequence}",
    }


async def test_an_orphaned_claim_is_taken_over_with_its_event_id_and_body_once_its_lease_ran_out(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    serve(build_service(settings_for(DispatcherSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8")))
    receiver = serve(receiver_app())
    expired, live = (
        payment_succeeded(recovery_payment(merchant_id=MERCHANT, profile_id=PROFILE)),
        payment_succeeded(recovery_payment(merchant_id=MERCHANT, profile_id=PROFILE)),
    )
    now = datetime.now(UTC)
    dead = orphan_claim(expired, lease_until=now - timedelta(seconds=1))
    busy = orphan_claim(live, lease_until=now + timedelta(minutes=10))
    db.webhook_claims.insert_many([dead, busy])
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        await broker.publish(live)
        await broker.publish(expired)
        record = await eventually(
            lambda: db.webhook_events.find_one({"_id": record_key(MERCHANT, dead["event_id"]), "status": "delivered"})
        )
        # The claim whose holder is still within its lease is left alone (its message waits and comes back).
        await asyncio.sleep(1.0)
        assert db.webhook_events.find_one({"event_id": busy["event_id"]}) is None
    (delivery,) = received(receiver)
    # The event the dead dispatcher may already have sent: the same webhook-id and the same bytes.
    assert dict(delivery["headers"])["webhook-id"] == dead["event_id"]
    assert delivery["body"].encode() == dead["body"]
    assert json.loads(delivery["body"])["event_id"] == dead["event_id"]
    assert record["sequence"] == 1 and record["idempotent_event_id"] == dead["idempotent_event_id"]
    assert bytes(record["body"]) == dead["body"]
    assert db.webhook_claims.find_one({"_id": dead["_id"]})["lease_owner"] != "a-dispatcher-that-died"
    assert db.webhook_events.count_documents({"delivery_attempt": "initial_attempt"}) == 1


async def test_numbers_taken_by_another_dispatcher_are_read_back_and_skipped(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    serve(build_service(settings_for(DispatcherSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8")))
    receiver = serve(receiver_app())
    payment = recovery_payment(merchant_id=MERCHANT, profile_id=PROFILE)
    older, newer = payment_succeeded(payment), payment_succeeded(payment)
    # Another dispatcher numbered and delivered the payment's first event: this one has not seen it.
    first = orphan_claim(older, lease_until=datetime.now(UTC) - timedelta(minutes=4))
    db.webhook_claims.insert_one(first)
    db.webhook_events.insert_one(
        {
            "_id": record_key(MERCHANT, first["event_id"]),
            "event_id": first["event_id"],
            "initial_attempt_id": first["event_id"],
            "idempotent_event_id": first["idempotent_event_id"],
            "payment_id": payment.payment_id,
            "merchant_id": MERCHANT,
            "business_profile_id": PROFILE,
            "delivery_attempt": "initial_attempt",
            "sequence": 1,
            "sequence_key": first["sequence_key"],
            "status": "delivered",
            "created_at": first["created_at"],
        }
    )
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        await broker.publish(newer)
        key = idempotent_event_id(newer.payload.attempt_id, "payment_succeeded")
        record = await eventually(
            lambda: db.webhook_events.find_one({"idempotent_event_id": key, "status": "delivered"})
        )
    assert record["sequence"] == 2
    assert db.webhook_claims.find_one({"_id": f"{payment.payment_id}#2"})["idempotent_event_id"] == key
    (delivery,) = received(receiver)
    assert dict(delivery["headers"])["webhook-sequence"] == "2"
