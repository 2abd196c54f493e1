"""`payment.dispute-lost` through the real consumer pipeline on in-memory adapters: the merchant's `dispute_lost`
webhook (class `disputes`, the dispute its object, in Hyperswitch's field order), signed over the bytes it stores,
raised once however often the message comes, numbered within its payment, retried with the same bytes, and found by
the events API by class, type, dispute and payment."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from fastapi import FastAPI

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.verification import verify_standard_webhook
from recovery_contracts.webhooks import OutgoingWebhook
from recovery_dispatcher.adapters.event_documents import initial_document
from recovery_dispatcher.domain.outgoing_webhook import format_timestamp
from recovery_dispatcher.domain.status import EventStatus
from recovery_dispatcher.http import router
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER, InternalCaller
from recovery_runtime.testing import consumed

from .fakes import AttemptRecord, Dispatcher, RecordQueries
from .messages import HASH_KEY, URL, WHSEC, deliver, dispute_lost, endpoint_update, payment, succeeded

LOST, SUCCEEDED = "dispatcher.dispute-lost", "dispatcher.payment-succeeded"
DELIVER, PROFILE_UPDATED = "dispatcher.deliver-webhook", "dispatcher.profile-updated"


async def test_a_lost_dispute_is_delivered_once_signed_with_the_dispute_as_its_object(dispatcher: Dispatcher) -> None:
    message = dispute_lost()
    dispute = message.payload.dispute
    await dispatcher.send(LOST, message)

    [request] = dispatcher.sender.requests
    assert request.url == URL
    webhook = OutgoingWebhook.model_validate_json(request.body)
    assert (webhook.event_type, webhook.content.type) == ("dispute_lost", "dispute_details")
    # As the merchant parses it (timestamps to the millisecond, as they are sent).
    assert isinstance(webhook.content.object, DisputeObject)
    assert webhook.content.object.model_dump(mode="json") == dispute.model_dump(mode="json")
    # Both signatures over the exact bytes sent, which are the bytes the event keeps for every later attempt.
    assert (
        request.headers["x-webhook-signature-512"]
        == hmac.new(HASH_KEY.encode(), request.body, hashlib.sha512).hexdigest()
    )
    verify_standard_webhook(request.body, request.headers, WHSEC, now=dispatcher.clock.now())
    [event] = dispatcher.events.initial_events()
    assert event.body == request.body and request.headers["webhook-id"] == event.event_id == webhook.event_id
    # Hyperswitch's: the dispute is the primary object; the event belongs to the dispute's payment.
    assert event.idempotent_event_id == idempotent_event_id(dispute.dispute_id, "dispute_lost")
    assert (event.primary_object_id, event.payment_id) == (dispute.dispute_id, message.payload.payment_id)
    assert (event.event_class, event.content_type) == ("disputes", "dispute_details")
    assert (event.status, event.attempts, event.delivered) == (EventStatus.DELIVERED, 1, True)
    assert dispatcher.events.attempts == [AttemptRecord(event.event_id, WebhookDeliveryAttempt.INITIAL_ATTEMPT, 200)]
    assert dispatcher.published.dead_letters == []


async def test_the_body_is_byte_for_byte_the_dispute_in_its_declared_field_order(dispatcher: Dispatcher) -> None:
    message = dispute_lost()
    await dispatcher.send(LOST, message)

    [request] = dispatcher.sender.requests
    event_id = json.loads(request.body)["event_id"]
    # Written out independently: Hyperswitch's envelope keys, then DisputeResponse's fields in declaration order.
    dispute = message.payload.dispute.model_dump(mode="json")
    assert list(dispute) == list(DisputeObject.model_fields)
    expected = {
        "merchant_id": "merchant_test",
        "event_id": event_id,
        "event_type": "dispute_lost",
        "content": {"type": "dispute_details", "object": dispute},
        "timestamp": format_timestamp(dispatcher.clock.now()),
    }
    assert request.body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()


async def test_a_duplicate_message_makes_one_event_and_one_delivery(dispatcher: Dispatcher) -> None:
    message = dispute_lost()
    applied, duplicates = consumed(LOST, "applied"), consumed(LOST, "duplicate")
    await dispatcher.send(LOST, message)
    await dispatcher.send(LOST, message)
    # Intake applies a Stripe event once, but an outbox may publish its message again after a lost confirm.
    await dispatcher.send(LOST, message.model_copy(update={"message_id": "published-again"}))

    assert len(dispatcher.sender.requests) == 1
    assert len(dispatcher.events.initial_events()) == 1 and len(dispatcher.events.claims) == 1
    assert (consumed(LOST, "applied") - applied, consumed(LOST, "duplicate") - duplicates) == (1, 2)


async def test_it_is_numbered_after_the_payments_earlier_events(dispatcher: Dispatcher) -> None:
    paid = payment()
    await dispatcher.send(SUCCEEDED, succeeded(paid))
    await dispatcher.send(LOST, dispute_lost(paid))

    sent = [(json.loads(r.body)["event_type"], r.headers["webhook-sequence"]) for r in dispatcher.sender.requests]
    assert sent == [("payment_succeeded", "1"), ("dispute_lost", "2")]
    assert sorted(dispatcher.events.claims) == [f"{paid.payment_id}#1", f"{paid.payment_id}#2"]


async def test_a_failed_delivery_is_retried_on_the_schedule_with_the_same_bytes_and_id(dispatcher: Dispatcher) -> None:
    dispatcher.sender.answer(503)
    await dispatcher.send(LOST, dispute_lost())
    [timer] = dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER)
    [scheduled] = dispatcher.events.initial_events()
    assert (scheduled.status, scheduled.retry_index) == (EventStatus.RETRY_SCHEDULED, 1)

    await dispatcher.send(DELIVER, deliver(timer.payload.message))

    first, second = dispatcher.sender.requests
    assert second.body == first.body and second.headers["webhook-id"] == first.headers["webhook-id"]
    [event] = dispatcher.events.initial_events()
    assert (event.status, event.attempts) == (EventStatus.DELIVERED, 2)
    assert [a.kind for a in dispatcher.events.attempts] == [
        WebhookDeliveryAttempt.INITIAL_ATTEMPT,
        WebhookDeliveryAttempt.AUTOMATIC_RETRY,
    ]


async def test_the_profiles_payment_toggles_do_not_switch_it_off_but_disabled_webhooks_send_nothing(
    dispatcher: Dispatcher,
) -> None:
    # A profile says which payment events it wants (Hyperswitch's `payment_*_enabled`); it has no dispute toggle.
    toggles = {f"payment_{t}_enabled": False for t in ("created", "succeeded", "failed")}
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, **toggles))
    await dispatcher.send(LOST, dispute_lost())
    assert [json.loads(r.body)["event_type"] for r in dispatcher.sender.requests] == ["dispute_lost"]

    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=3, webhooks_enabled=False))
    await dispatcher.send(LOST, dispute_lost())
    assert len(dispatcher.sender.requests) == 1
    failed = [e for e in dispatcher.events.initial_events() if e.status is EventStatus.FAILED]
    assert [e.status_reason for e in failed] == ["no enabled webhook endpoint on the profile"]


async def test_a_dispute_on_another_payment_than_the_message_names_is_dead_lettered(dispatcher: Dispatcher) -> None:
    message = dispute_lost()
    other = message.payload.model_copy(update={"payment_id": "12345_pay_other"})
    await dispatcher.send(LOST, message.model_copy(update={"payload": other}))

    [letter] = dispatcher.published.dead_letters
    assert letter.queue == LOST and f"is on {message.payload.payment_id}, not on 12345_pay_other" in letter.reason
    assert dispatcher.sender.requests == [] and dispatcher.events.claims == {}


async def test_the_events_api_finds_it_by_class_type_dispute_and_payment(dispatcher: Dispatcher) -> None:
    paid = payment()
    message = dispute_lost(paid)
    await dispatcher.send(SUCCEEDED, succeeded(paid))
    await dispatcher.send(LOST, message)
    paid_event, lost_event = sorted(dispatcher.events.initial_events(), key=lambda e: e.sequence)
    docs = [initial_document(e) for e in (paid_event, lost_event)]
    app = FastAPI()
    token = dispatcher.settings.internal_api_token
    app.include_router(router(dispatcher.events, RecordQueries(docs), _no_retry, _no_recover, InternalCaller(token)))
    headers = {TOKEN_HEADER: token, MERCHANT_HEADER: "merchant_test"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dispatcher", headers=headers) as http:

        async def listed(constraints: dict[str, Any]) -> list[dict[str, Any]]:
            answer = await http.post("/internal/events/merchant_test/list", json=constraints)
            assert answer.status_code == 200, answer.text
            return list(answer.json()["events"])

        by_class = await listed({"event_classes": ["disputes"]})
        by_type = await listed({"event_types": ["dispute_lost"]})
        by_dispute = await listed({"object_id": message.payload.dispute.dispute_id})
        by_payment = await listed({"object_id": paid.payment_id})
        payments_only = await listed({"event_classes": ["payments"]})
        attempts = (await http.get(f"/internal/events/merchant_test/{lost_event.event_id}/attempts")).json()

    [item] = by_class
    assert item["event_id"] == lost_event.event_id and by_type == by_dispute == by_class
    assert (item["event_class"], item["event_type"], item["object_id"]) == (
        "disputes",
        "dispute_lost",
        message.payload.dispute.dispute_id,
    )
    assert item["is_delivery_successful"] is True
    assert sorted(e["event_id"] for e in by_payment) == sorted([lost_event.event_id, paid_event.event_id])
    assert [e["event_id"] for e in payments_only] == [paid_event.event_id]
    [attempt] = attempts
    assert attempt["request"]["body"] == lost_event.body.decode()
    assert docs[1]["primary_object_type"] == "dispute_details" and docs[0]["primary_object_type"] == "payment_details"


async def _no_retry(event: Any) -> dict[str, Any]:
    raise AssertionError("no manual retry in this test")


async def _no_recover(*asked: Any) -> Any:
    raise AssertionError("no recover in this test")
