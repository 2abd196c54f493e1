"""`payment.succeeded`, `payment.failed` and `payment.cancelled` through the real consumer pipeline on in-memory
adapters: one signed delivery per event, duplicates and lost claims deliver nothing twice, bad messages are
dead-lettered with the reason, and two messages of one payment are delivered in order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.envelope import MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.verification import verify_standard_webhook
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.status import EventStatus
from recovery_runtime.testing import consumed, publish

from .fakes import AttemptRecord, Dispatcher
from .messages import HASH_KEY, URL, WHSEC, cancelled, failed, payment, succeeded

SUCCEEDED, FAILED = "dispatcher.payment-succeeded", "dispatcher.payment-failed"
CANCELLED = "dispatcher.payment-cancelled"


def raised_elsewhere(dispatcher: Dispatcher, message: object) -> WebhookEvent:
    """The event another dispatcher raised for `message` (same attempt, same type)."""
    payload = message.payload  # type: ignore[attr-defined]
    return WebhookEvent.raised(
        event_type="payment_succeeded",
        primary_object_id=payload.attempt_id,
        content=payload.payment,
        merchant_id="merchant_test",
        profile_id="pro_test",
        now=dispatcher.clock.now(),
        lease_until=dispatcher.clock.now(),
        lease_owner="another-dispatcher",
    )


async def test_a_new_payment_is_delivered_once_signed_and_recorded(dispatcher: Dispatcher) -> None:
    message = succeeded()
    await dispatcher.send(SUCCEEDED, message)

    [request] = dispatcher.sender.requests
    body = json.loads(request.body)
    assert request.url == URL and body["event_type"] == "payment_succeeded"
    assert body["content"]["object"]["id"] == message.payload.payment_id
    verify_standard_webhook(request.body, request.headers, WHSEC, now=dispatcher.clock.now())
    assert request.headers["webhook-id"] == body["event_id"] and request.headers["webhook-sequence"] == "1"
    assert (
        request.headers["x-webhook-signature-512"]
        == hmac.new(HASH_KEY.encode(), request.body, hashlib.sha512).hexdigest()
    )
    [event] = dispatcher.events.initial_events()
    assert event.event_id == body["event_id"] and event.body == request.body
    assert event.idempotent_event_id == idempotent_event_id(message.payload.attempt_id, "payment_succeeded")
    assert (event.status, event.attempts, event.delivered, event.lease_until) == (EventStatus.DELIVERED, 1, True, None)
    assert dispatcher.events.attempts == [AttemptRecord(event.event_id, WebhookDeliveryAttempt.INITIAL_ATTEMPT, 200)]
    assert dispatcher.published.published == [] and dispatcher.published.dead_letters == []


async def test_a_failed_payment_raises_an_event_of_its_own_type(dispatcher: Dispatcher) -> None:
    await dispatcher.send(FAILED, failed())
    [request] = dispatcher.sender.requests
    assert json.loads(request.body)["event_type"] == "payment_failed"
    [event] = dispatcher.events.initial_events()
    assert event.event_type == "payment_failed" and event.status is EventStatus.DELIVERED


async def test_a_cancelled_recovery_raises_one_payment_cancelled_event_for_the_payment(dispatcher: Dispatcher) -> None:
    message = cancelled()
    await dispatcher.send(CANCELLED, message)
    await dispatcher.send(CANCELLED, message.model_copy(update={"message_id": "published-again"}))

    [request] = dispatcher.sender.requests
    body = json.loads(request.body)
    assert body["event_type"] == "payment_cancelled"
    assert (body["content"]["object"]["id"], body["content"]["object"]["status"]) == (
        message.payload.payment_id, "cancelled",
    )  # fmt: skip
    assert (
        request.headers["x-webhook-signature-512"]
        == hmac.new(HASH_KEY.encode(), request.body, hashlib.sha512).hexdigest()
    )
    verify_standard_webhook(request.body, request.headers, WHSEC, now=dispatcher.clock.now())
    [event] = dispatcher.events.initial_events()
    # Its object is the payment (a cancelled recovery may have made no attempt, and never runs again).
    assert event.idempotent_event_id == idempotent_event_id(message.payload.payment_id, "payment_cancelled")
    assert (event.event_type, event.status) == ("payment_cancelled", EventStatus.DELIVERED)


async def test_a_duplicate_message_makes_one_event_and_one_delivery(dispatcher: Dispatcher) -> None:
    message = succeeded()
    applied, duplicates = consumed(SUCCEEDED, "applied"), consumed(SUCCEEDED, "duplicate")
    await dispatcher.send(SUCCEEDED, message)
    await dispatcher.send(SUCCEEDED, message)
    await dispatcher.send(SUCCEEDED, message.model_copy(update={"message_id": "published-again"}))
    assert len(dispatcher.sender.requests) == 1
    assert len(dispatcher.events.initial_events()) == 1 and len(dispatcher.events.claims) == 1
    # Acknowledged as duplicates (the fault suite's message balance counts them so), not applied again.
    assert (consumed(SUCCEEDED, "applied") - applied, consumed(SUCCEEDED, "duplicate") - duplicates) == (1, 2)


async def test_a_claim_lost_to_a_dispatcher_that_delivered_the_event_sends_nothing(dispatcher: Dispatcher) -> None:
    message = succeeded()
    theirs = dispatcher.events.claimed_elsewhere(raised_elsewhere(dispatcher, message), lease_until=None)
    dispatcher.events.recorded_elsewhere(theirs.attempts_made(1, first_succeeded=True, delivered_at=theirs.created_at))
    await dispatcher.send(SUCCEEDED, message)
    assert dispatcher.sender.requests == []
    assert dispatcher.published.dead_letters == []


async def test_a_claim_lost_to_a_dispatcher_still_delivering_comes_back_later_and_sends_nothing(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    message = succeeded()
    later = dispatcher.clock.now() + timedelta(minutes=1)
    dispatcher.events.claimed_elsewhere(raised_elsewhere(dispatcher, message), lease_until=later)
    await dispatcher.send(SUCCEEDED, message)
    assert dispatcher.sender.requests == [] and dispatcher.events.initial_events() == []
    assert len(requeues) == 1  # not acknowledged: redelivered after a pause


async def test_a_claim_whose_dispatcher_died_is_taken_over_with_its_event_id_and_body(dispatcher: Dispatcher) -> None:
    message = succeeded()
    theirs = dispatcher.events.claimed_elsewhere(
        raised_elsewhere(dispatcher, message), lease_until=dispatcher.clock.now()
    )
    await dispatcher.send(SUCCEEDED, message)
    [request] = dispatcher.sender.requests
    assert request.headers["webhook-id"] == theirs.event_id and request.body == theirs.body
    [event] = dispatcher.events.initial_events()
    assert event.event_id == theirs.event_id and event.status is EventStatus.DELIVERED
    [claim] = dispatcher.events.claims.values()
    assert claim.lease_owner is not None and claim.lease_owner.startswith("dispatcher-1/")


async def test_a_merchant_id_that_cannot_key_records_is_dead_lettered_with_the_reason(dispatcher: Dispatcher) -> None:
    message = succeeded().model_copy(update={"merchant_id": "a/merchant"})
    await dispatcher.send(SUCCEEDED, message)
    [letter] = dispatcher.published.dead_letters
    assert letter.queue == SUCCEEDED
    assert "merchant id 'a/merchant' is not 1-64 characters of [A-Za-z0-9_-]" in letter.reason
    assert dispatcher.sender.requests == [] and dispatcher.events.claims == {}


async def test_an_invalid_message_is_dead_lettered_with_what_is_wrong(dispatcher: Dispatcher) -> None:
    body = succeeded().model_dump(mode="json")
    del body["payload"]["attempt_id"]
    await dispatcher.send(SUCCEEDED, json.dumps(body).encode())
    [letter] = dispatcher.published.dead_letters
    assert "payload.attempt_id: Field required" in letter.reason
    assert dispatcher.sender.requests == []


async def test_a_payment_of_a_profile_not_known_yet_comes_back_later(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    message = succeeded().model_copy(update={"profile_id": "pro_unknown"})
    await dispatcher.send(SUCCEEDED, message)
    assert dispatcher.sender.requests == [] and len(requeues) == 1


async def test_two_messages_of_one_payment_are_delivered_in_their_order(dispatcher: Dispatcher) -> None:
    paid = payment()
    first, second = succeeded(paid), succeeded(paid)
    dispatcher.sender.gate = asyncio.Event()
    assert dispatcher.broker is not None
    sending = [
        asyncio.create_task(publish(dispatcher.broker, SUCCEEDED, first)),
        asyncio.create_task(publish(dispatcher.broker, SUCCEEDED, second)),
    ]
    await dispatcher.sender.requested.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    # The second waits for the first, in its lane: it has not even claimed its event yet.
    assert len(dispatcher.sender.requests) == 1 and len(dispatcher.events.claims) == 1
    dispatcher.sender.gate.set()
    await asyncio.gather(*sending)
    ids = [json.loads(r.body)["content"]["object"]["id"] for r in dispatcher.sender.requests]
    assert ids == [paid.payment_id, paid.payment_id]
    assert [r.headers["webhook-sequence"] for r in dispatcher.sender.requests] == ["1", "2"]
    # Neither was held for the other (no timer): the lane ordered them.
    assert dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER) == []
