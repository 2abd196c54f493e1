"""The webhook dispatcher against real RabbitMQ, the MongoDB-wire server and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import socket
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest
from standardwebhooks import Webhook

from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_contracts.api.masking import mask_secret
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id, new_attempt_id
from recovery_contracts.messages import PaymentFailed, PaymentSucceeded, ProfileUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_dispatcher.app import build_service
from recovery_dispatcher.domain.outgoing_webhook import generate_whsec_secret
from recovery_dispatcher.settings import DispatcherSettings
from recovery_intake.app import build_service as build_intake
from recovery_intake.settings import IntakeSettings
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.secrets import SecretBox
from recovery_runtime.settings import ServiceSettings
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually, operational_events
from support.payments import profile, recovery_payment
from support.services import settings_for
from support.stack import Isolation

HASH_KEY = "a-profile-hash-key-for-tests"
ENDPOINT_TOKEN = "Bearer merchant-endpoint-token"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MERCHANT = "merchant_test"
PROFILE = "pro_test"
TOKEN = ServiceSettings().internal_api_token
FAST = {
    "outbound_allowed_cidrs": "127.0.0.0/8",
    # Schedule seconds at TIME_SCALE 1000: a few milliseconds of wall-clock time each.
    "webhook_retry_schedule_seconds": "1,1",
    "webhook_total_timeout_seconds": 1.0,
}


def start_dispatcher(serve: Any, isolation: Isolation, **overrides: Any) -> Any:
    return serve(build_service(settings_for(DispatcherSettings, isolation, **{**FAST, **overrides})))


@pytest.fixture
def dispatcher(serve: Any, isolation: Isolation) -> Any:
    return start_dispatcher(serve, isolation)


def payment_event(
    kind: str = "succeeded", *, payment: Any = None, merchant: str = MERCHANT, profile_id: str = PROFILE
) -> Envelope[Any]:
    payment = payment or recovery_payment(merchant_id=merchant, profile_id=profile_id)
    attempt_id = new_attempt_id("12345")
    now = datetime.now(UTC)
    status = IntentStatus.SUCCEEDED if kind == "succeeded" else IntentStatus.FAILED
    obj = build_payment_object(
        payment,
        status=status,
        modified_at=now,
        attempt=AttemptSummary(total_retry_count=2, token="pm_card_visa", connector_transaction_id="pi_123"),
    )
    common = {"correlation_id": payment.payment_id, "merchant_id": merchant, "profile_id": profile_id}
    if kind == "succeeded":
        return Envelope[PaymentSucceeded](
            type=MessageType.PAYMENT_SUCCEEDED,
            **common,
            payload=PaymentSucceeded(
                payment_id=payment.payment_id,
                attempt_id=attempt_id,
                attempt_number=1,
                token="pm_card_visa",
                connector_transaction_id="pi_123",
                succeeded_at=now,
                payment=obj,
            ),
        )
    return Envelope[PaymentFailed](
        type=MessageType.PAYMENT_FAILED,
        **common,
        payload=PaymentFailed(
            payment_id=payment.payment_id,
            reason="hard_declined",
            business_status="failed",
            attempt_id=attempt_id,
            payment=obj,
        ),
    )


def succeeded() -> Envelope[PaymentSucceeded]:
    return payment_event("succeeded")


def endpoint(
    url: str,
    *,
    profile_id: str = PROFILE,
    merchant: str = MERCHANT,
    secrets: tuple[str, ...] = (WHSEC,),
    schedule: tuple[float, ...] | None = None,
    headers: dict[str, str] | None = None,
    version: int = 1,
) -> Envelope[ProfileUpdated]:
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=merchant,
        profile_id=profile_id,
        payload=ProfileUpdated(
            profile_id=profile_id,
            merchant_id=merchant,
            version=version,
            webhook_url=url,
            payment_response_hash_key=HASH_KEY,
            standard_webhooks_secrets=secrets,
            custom_headers=headers or {},
            webhook_retry_schedule_seconds=schedule,
        ),
    )


def behave(receiver: Any, *behaviours: dict[str, Any]) -> None:
    httpx.post(f"{receiver.url}/_receiver/config", json={"behaviours": list(behaviours)}).raise_for_status()


def received(receiver: Any) -> list[dict[str, Any]]:
    return httpx.get(f"{receiver.url}/received").json()


def headers_of(delivery: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in delivery["headers"]}


def internal(dispatcher: Any, method: str, path: str, merchant: str = MERCHANT, **kwargs: Any) -> httpx.Response:
    headers = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: merchant}
    return httpx.request(method, f"{dispatcher.url}/internal/events/{merchant}{path}", headers=headers, **kwargs)


def initial_of(db: Any, event: Envelope[Any], event_type: str = "payment_succeeded") -> dict[str, Any] | None:
    key = idempotent_event_id(event.payload.attempt_id, event_type)
    return db.webhook_events.find_one({"idempotent_event_id": key})


def finished(db: Any, event: Envelope[Any], event_type: str = "payment_succeeded") -> Any:
    record = initial_of(db, event, event_type)
    return record if record and record["status"] in ("delivered", "failed") else None


async def next_json(queue: aio_pika.abc.AbstractQueue, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            return json.loads(message.body)
        await asyncio.sleep(0.05)
    raise AssertionError("no operational event")


async def test_payment_succeeded_is_delivered_signed_once_and_recorded(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    receiver = serve(receiver_app(hash_key=HASH_KEY, whsec_secret=WHSEC))
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(profile(f"{receiver.url}/webhooks", HASH_KEY, WHSEC))
        await broker.publish(event)
        await broker.publish(event.model_copy(update={"message_id": "the-same-event-published-again"}))
        deliveries = await eventually(lambda: received(receiver))

    delivery = deliveries[0]
    headers = headers_of(delivery)
    body = delivery["body"].encode()
    # Checked here with hashlib and the standardwebhooks package, independently of the dispatcher's code.
    assert headers["x-webhook-signature-512"] == hmac.new(HASH_KEY.encode(), body, hashlib.sha512).hexdigest()
    Webhook(WHSEC).verify(body, headers)
    assert delivery["standard_webhooks"]["valid"] is True
    parsed = json.loads(body)
    assert list(parsed) == ["merchant_id", "event_id", "event_type", "content", "timestamp"]
    assert parsed["event_type"] == "payment_succeeded"
    assert parsed["content"]["object"]["id"] == event.payload.payment_id
    assert headers["webhook-id"] == parsed["event_id"]
    assert headers["webhook-sequence"] == "1"

    record = await eventually(
        lambda: db.webhook_events.find_one({"event_id": parsed["event_id"], "status": "delivered"})
    )
    assert record["idempotent_event_id"] == idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    assert record["is_overall_delivery_successful"] is True and record["is_webhook_notified"] is True
    assert record["response"]["status_code"] == 200
    assert record["response"]["duration_ms"] >= 0
    assert record["delivery_attempt"] == "initial_attempt"
    assert record["sequence"] == 1
    assert bytes(record["body"]) == body
    # The duplicate event made no second initial event and no second delivery.
    assert db.webhook_events.count_documents({}) == 1
    assert len(received(receiver)) == 1


async def test_two_dispatchers_racing_on_duplicates_make_one_initial_event_and_one_delivery(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    start_dispatcher(serve, isolation, service_instance_id="one")
    start_dispatcher(serve, isolation, service_instance_id="two")
    receiver = serve(receiver_app())
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        for n in range(8):
            await broker.publish(event.model_copy(update={"message_id": f"copy-{n}"}))
        await eventually(lambda: finished(db, event))
        await asyncio.sleep(1.0)
        assert await broker.depth("dispatcher.payment-succeeded") == 0
    assert db.webhook_events.count_documents({"delivery_attempt": "initial_attempt"}) == 1
    assert len(received(receiver)) == 1


async def test_500_twice_then_200_makes_three_attempts_with_one_webhook_id_listed_by_the_api(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    receiver = serve(receiver_app(whsec_secret=WHSEC))
    behave(receiver, {"status": 500, "times": 2})
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event))
    assert record["status"] == "delivered"
    deliveries = received(receiver)
    assert [d["response"]["status"] for d in deliveries] == [500, 500, 200]
    assert len({headers_of(d)["webhook-id"] for d in deliveries}) == 1
    assert all(d["standard_webhooks"]["valid"] for d in deliveries)

    attempts = internal(dispatcher, "GET", f"/{record['event_id']}/attempts").json()
    assert [a["delivery_attempt"] for a in attempts] == ["initial_attempt", "automatic_retry", "automatic_retry"]
    assert [a["response"]["status_code"] for a in attempts] == [500, 500, 200]
    assert {a["initial_attempt_id"] for a in attempts} == {record["event_id"]}
    assert attempts[0]["request"]["body"] == deliveries[0]["body"]
    listed = internal(dispatcher, "POST", "/list", json={}).json()
    assert listed["total_count"] == 1 and listed["events"][0]["is_delivery_successful"] is True


async def test_durable_retries_through_the_scheduler_then_retries_exceeded_with_an_operational_event(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    start_dispatcher(serve, isolation, webhook_in_process_attempts=1)
    receiver = serve(receiver_app())
    behave(receiver, {"status": 500, "times": 100})
    event = succeeded()
    async with (
        operational_events(isolation.rabbitmq_url) as alerts,
        broker_probe(isolation.rabbitmq_url) as broker,
    ):
        await broker.publish(endpoint(f"{receiver.url}/hook", schedule=(1.0, 2.0)))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event), timeout=30)
        alert = await next_json(alerts)
    assert record["status"] == "failed" and record["status_reason"].startswith("RETRIES_EXCEEDED")
    assert record["attempts"] == 3
    assert len(received(receiver)) == 3
    kinds = [d["delivery_attempt"] for d in db.webhook_events.find({"initial_attempt_id": record["event_id"]})]
    assert sorted(kinds) == ["automatic_retry", "automatic_retry", "initial_attempt"]
    assert alert["type"] == "webhook.delivery-failed"
    assert alert["payload"]["event_id"] == record["event_id"] and alert["payload"]["attempts"] == 3


async def test_durable_retry_succeeds_and_a_newer_event_of_the_payment_waits_for_the_older_one(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    start_dispatcher(serve, isolation, webhook_in_process_attempts=1)
    receiver = serve(receiver_app())
    behave(receiver, {"status": 503, "times": 1})
    payment = recovery_payment()
    older, newer = payment_event("failed", payment=payment), payment_event("succeeded", payment=payment)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", schedule=(50.0,)))
        await broker.publish(older)
        await eventually(lambda: initial_of(db, older, "payment_failed"))
        await broker.publish(newer)
        await eventually(lambda: finished(db, newer), timeout=30)
    deliveries = received(receiver)
    types = [(d["json"]["event_type"], d["response"]["status"], headers_of(d)["webhook-sequence"]) for d in deliveries]
    assert types == [("payment_failed", 503, "1"), ("payment_failed", 200, "1"), ("payment_succeeded", 200, "2")]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ({"status": 200, "sleep_seconds": 3}, "timed out"),
        ({"status": 301, "location": "http://127.0.0.1:1/elsewhere"}, None),
    ],
    ids=["timeout", "redirect-not-followed"],
)
async def test_failures_are_recorded_and_not_followed(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any, behaviour: dict[str, Any], reason: str | None
) -> None:
    receiver = serve(receiver_app())
    behave(receiver, {**behaviour, "times": 10})
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", schedule=()))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event), timeout=30)
    assert record["status"] == "failed" and record["status_reason"].startswith("RETRIES_EXCEEDED")
    if reason:
        assert reason in record["response"]["error_message"]
    else:
        assert record["response"]["status_code"] == 301
        # Not followed, and 3xx is not retried in process.
        assert len(received(receiver)) == 1


async def test_a_merchant_id_that_cannot_key_records_is_dead_lettered_with_the_reason(
    dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    event = payment_event(merchant="a/merchant")
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(event)
        dead = await broker.take("dispatcher.payment-succeeded.dlq")
    assert "merchant id 'a/merchant' is not 1-64 characters of [A-Za-z0-9_-]" in dead.headers["x-rejection-reason"]
    assert db.webhook_claims.count_documents({}) == 0 and db.webhook_events.count_documents({}) == 0


async def test_connection_refused_is_recorded_with_the_reason(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"http://127.0.0.1:{port}/hook", schedule=()))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event), timeout=30)
    assert record["status"] == "failed"
    assert record["response"]["status_code"] is None
    assert "Unable to send request to merchant server: cannot connect" in record["response"]["error_message"]


async def test_410_disables_the_endpoint_with_an_operational_event(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    receiver = serve(receiver_app())
    behave(receiver, {"status": 410})
    first, second = succeeded(), succeeded()
    async with (
        operational_events(isolation.rabbitmq_url) as alerts,
        broker_probe(isolation.rabbitmq_url) as broker,
    ):
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await broker.publish(first)
        await eventually(lambda: finished(db, first))
        await broker.publish(second)
        record = await eventually(lambda: finished(db, second))
        types = {(await next_json(alerts))["type"] for _ in range(3)}
    assert db.webhook_endpoints.find_one({"_id": PROFILE})["disabled_reason"].startswith("410 Gone")
    assert record["status"] == "failed" and "endpoint disabled" in record["status_reason"]
    assert len(received(receiver)) == 1
    assert types == {"webhook.endpoint-disabled", "webhook.delivery-failed"}


async def test_429_retry_after_is_honoured(serve: Any, dispatcher: Any, isolation: Isolation, db: Any) -> None:
    receiver = serve(receiver_app())
    behave(receiver, {"status": 429, "retry_after": "2"})
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event))
    assert record["status"] == "delivered"
    first, second = received(receiver)
    gap = datetime.fromisoformat(second["received_at"]) - datetime.fromisoformat(first["received_at"])
    assert gap.total_seconds() >= 1.9
    assert int(headers_of(second)["webhook-timestamp"]) > int(headers_of(first)["webhook-timestamp"])


async def test_a_slow_endpoint_does_not_delay_a_healthy_one(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    slow, fast = serve(receiver_app()), serve(receiver_app())
    behave(slow, {"status": 200, "sleep_seconds": 0.9, "times": 20})
    slow_events = [payment_event(profile_id="pro_slow") for _ in range(6)]
    healthy = payment_event(profile_id="pro_fast")
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{slow.url}/hook", profile_id="pro_slow"))
        await broker.publish(endpoint(f"{fast.url}/hook", profile_id="pro_fast"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 2)
        for event in slow_events:
            await broker.publish(event)
        await eventually(lambda: received(slow))
        started = time.monotonic()
        await broker.publish(healthy)
        await eventually(lambda: received(fast), interval=0.02)
        assert time.monotonic() - started < 0.8
        await eventually(lambda: all(finished(db, e) for e in slow_events))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://localhost:{port}/hook", "127.0.0.1 is a loopback address"),
    ],
    ids=["metadata", "private", "hostname-to-loopback"],
)
async def test_ssrf_targets_are_blocked_and_recorded_with_the_reason(
    serve: Any, isolation: Isolation, db: Any, url: str, reason: str
) -> None:
    start_dispatcher(serve, isolation, outbound_allowed_cidrs="")
    receiver = serve(receiver_app())
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(url.format(port=receiver.port)))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event))
    assert record["status"] == "failed"
    assert record["response"]["error_message"].startswith("Unable to send request to merchant server: blocked: ")
    assert reason in record["response"]["error_message"]
    assert received(receiver) == []


async def test_secret_rotation_sends_both_signatures_and_custom_headers(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    new_secret = generate_whsec_secret()
    receiver = serve(receiver_app())
    event = succeeded()
    # Header values come sealed as intake stores them; `x-tenant` as a message from before values were sealed.
    sealed_token = SecretBox.from_settings(ServiceSettings()).seal(ENDPOINT_TOKEN)
    custom = {"x-tenant": "t1", "authorization": sealed_token, "webhook-id": "x"}
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", secrets=(WHSEC, new_secret), headers=custom))
        await broker.publish(event)
        (delivery,) = await eventually(lambda: received(receiver))
    headers = headers_of(delivery)
    body = delivery["body"].encode()
    # Receivers holding either secret verify, with the standardwebhooks package.
    Webhook(WHSEC).verify(body, headers)
    Webhook(new_secret).verify(body, headers)
    assert len(headers["webhook-signature"].split(" ")) == 2
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    key = base64.b64decode(new_secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")
    assert headers["x-tenant"] == "t1" and headers["authorization"] == ENDPOINT_TOKEN
    assert headers["webhook-id"] == json.loads(body)["event_id"]

    # Stored sealed; recorded and shown by the events API with the custom values masked, the signatures as sent.
    assert db.webhook_endpoints.find_one({"_id": PROFILE})["custom_headers"] == custom
    record = await eventually(lambda: finished(db, event))
    expected = [
        [name, mask_secret(value) if name in ("x-tenant", "authorization") else value]
        for name, value in delivery["headers"]
        if name in ("x-tenant", "authorization", "webhook-signature", "webhook-id")
    ]
    assert [pair for pair in record["request"]["headers"] if pair[0].lower() in dict(expected)] == expected
    assert ENDPOINT_TOKEN not in str(record)
    [attempt] = internal(dispatcher, "GET", f"/{record['event_id']}/attempts").json()
    assert attempt["request"]["headers"] == record["request"]["headers"]


async def test_manual_retry_makes_one_attempt_and_returns_it(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    receiver = serve(receiver_app())
    behave(receiver, {"status": 500, "times": 3})
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", schedule=()))
        await broker.publish(event)
        record = await eventually(lambda: finished(db, event))
    assert record["status"] == "failed"
    answer = internal(dispatcher, "POST", f"/{record['event_id']}/retry")
    assert answer.status_code == 200, answer.text
    retried = answer.json()
    assert retried["delivery_attempt"] == "manual_retry"
    assert retried["response"]["status_code"] == 200
    assert retried["initial_attempt_id"] == record["event_id"] and retried["event_id"] != record["event_id"]
    assert len(received(receiver)) == 4
    assert headers_of(received(receiver)[-1])["webhook-id"] == record["event_id"]
    listed = internal(dispatcher, "POST", "/list", json={"is_delivered": True}).json()
    assert [e["event_id"] for e in listed["events"]] == [record["event_id"]]


async def test_a_manual_retry_that_succeeds_while_an_automatic_one_is_in_flight_keeps_the_event_delivered(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    """The automatic retry (the last one the schedule allows) is still waiting for its answer when the merchant's
    manual retry is delivered: the automatic one's failure, settled after, must not take the event back to failed
    (nor tell anyone it failed)."""
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))  # the retry's timer
    dispatcher = start_dispatcher(serve, isolation, webhook_total_timeout_seconds=5.0)
    receiver = serve(receiver_app())
    behave(receiver, {"status": 400}, {"status": 400, "sleep_seconds": 2.0}, {"status": 200})
    event = succeeded()
    async with broker_probe(isolation.rabbitmq_url) as broker, operational_events(isolation.rabbitmq_url) as told:
        await broker.publish(endpoint(f"{receiver.url}/hook", schedule=(1,)))
        await broker.publish(event)
        record = await eventually(lambda: (r := initial_of(db, event)) and r["status"] == "delivering" and r)
        answer = internal(dispatcher, "POST", f"/{record['event_id']}/retry")
        assert answer.status_code == 200 and answer.json()["response"]["status_code"] == 200, answer.text
        # The automatic retry's 400 is recorded after the manual retry's 200, then its failure settled.
        await eventually(lambda: initial_of(db, event)["attempts"] == 2, timeout=10)
        await asyncio.sleep(0.5)
        assert await told.get(fail=False) is None  # no webhook.delivery-failed
    final = initial_of(db, event)
    assert final is not None and (final["status"], final["status_reason"]) == (
        "delivered",
        "delivered by a manual retry",
    )
    assert len(received(receiver)) == 3


ADMIN_KEY = "test_admin_key"
NOT_RAISED = re.compile(
    r'^recovery_webhook_events_not_raised_total\{event_type="payment_failed"\} ([0-9.eE+-]+)$', re.MULTILINE
)


def not_raised(dispatcher: Any) -> float:
    """Payment-failed events the dispatcher did not raise (their type switched off), from its metrics."""
    found = NOT_RAISED.search(httpx.get(f"{dispatcher.url}/metrics").text)
    return float(found.group(1)) if found else 0.0


def start_intake(serve: Any, dispatcher: Any, isolation: Isolation) -> tuple[Any, Any, SeedScenario]:
    """Intake in front of `dispatcher`, a receiver, and the demo's scenario steps against them (admin key)."""
    intake = serve(
        build_intake(
            settings_for(IntakeSettings, isolation, admin_api_key=ADMIN_KEY, dispatcher_internal_url=dispatcher.url)
        )
    )
    receiver = serve(receiver_app())
    scenario = SeedScenario(Endpoints(intake.url, "http://127.0.0.1:1", receiver.url, ADMIN_KEY), say=lambda _: None)
    return intake, receiver, scenario


async def test_events_api_through_intake_filters_pages_and_isolates_merchants(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    intake, receiver, scenario = start_intake(serve, dispatcher, isolation)
    merchant_a, merchant_b = scenario.create_merchant(), scenario.create_merchant()
    key_a, key_b = scenario.create_api_key(merchant_a), scenario.create_api_key(merchant_b)
    events = [payment_event(merchant=merchant_a, profile_id="pro_a") for _ in range(3)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", profile_id="pro_a", merchant=merchant_a))
        for event in events:
            await broker.publish(event)
        await eventually(lambda: all(finished(db, e) for e in events))

    def call(method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{intake.url}{path}", headers={"api-key": key}, **kwargs)

    page = call("POST", f"/events/{merchant_a}", key_a, json={"limit": 2, "offset": 0}).json()
    assert page["total_count"] == 3 and len(page["events"]) == 2 and page["total_count_capped"] is False
    rest = call("POST", f"/events/{merchant_a}", key_a, json={"limit": 2, "offset": 2}).json()
    assert len(rest["events"]) == 1 and rest["next_cursor"] is None
    # The cursor extension: the next page after the last event of this one, whatever the depth.
    after = call("POST", f"/events/{merchant_a}", key_a, json={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert page["next_cursor"] == page["events"][-1]["event_id"]
    assert after["events"] == rest["events"] and after["total_count"] == 3
    # A full last page gives no cursor (no page of nothing after it).
    whole = call("POST", f"/events/{merchant_a}", key_a, json={"limit": 3}).json()
    assert len(whole["events"]) == 3 and whole["next_cursor"] is None
    # A deep offset is refused (the cursor reads any depth at the cost of one page).
    deep = call("POST", f"/events/{merchant_a}", key_a, json={"offset": 10_001})
    assert deep.status_code == 400 and "offset" in deep.text
    # Newest first, paged without overlap; the time filters are inclusive.
    listed = call("POST", f"/events/{merchant_a}", key_a, json={}).json()["events"]
    created = [datetime.fromisoformat(e["created"]) for e in listed]
    assert created == sorted(created, reverse=True)
    assert [e["event_id"] for e in page["events"] + rest["events"]] == [e["event_id"] for e in listed]
    middle = listed[1]["created"]
    since = call("POST", f"/events/{merchant_a}", key_a, json={"created_after": middle}).json()
    until = call("POST", f"/events/{merchant_a}", key_a, json={"created_before": middle}).json()
    assert {e["event_id"] for e in since["events"]} == {
        e["event_id"] for e, at in zip(listed, created, strict=True) if at >= created[1]
    }
    assert {e["event_id"] for e in until["events"]} == {
        e["event_id"] for e, at in zip(listed, created, strict=True) if at <= created[1]
    }
    window = {"created_after": listed[-1]["created"], "created_before": listed[0]["created"]}
    assert call("POST", f"/events/{merchant_a}", key_a, json=window).json()["total_count"] == 3
    one = events[1].payload
    by_object = call("POST", f"/events/{merchant_a}", key_a, json={"object_id": one.payment_id}).json()
    assert by_object["total_count"] == 1 and by_object["events"][0]["object_id"] == one.attempt_id
    event_id = by_object["events"][0]["event_id"]
    by_attempt = call("POST", f"/events/{merchant_a}", key_a, json={"object_id": one.attempt_id}).json()
    assert [e["event_id"] for e in by_attempt["events"]] == [event_id]
    both = {"object_id": one.attempt_id, "event_id": event_id}
    assert call("POST", f"/events/{merchant_a}", key_a, json=both).json()["total_count"] == 1
    other = {"object_id": events[0].payload.payment_id, "event_id": event_id}
    assert call("POST", f"/events/{merchant_a}", key_a, json=other).json()["total_count"] == 0
    attempts = call("GET", f"/events/{merchant_a}/{event_id}/attempts", key_a)
    assert attempts.status_code == 200 and attempts.json()[0]["response"]["status_code"] == 200

    # Merchant B: not on A's path, and A's event ids are unknown on its own.
    assert call("POST", f"/events/{merchant_a}", key_b, json={}).status_code in (401, 404)
    assert call("POST", f"/events/{merchant_b}", key_b, json={}).json() == {
        "events": [],
        "total_count": 0,
        "total_count_capped": False,
        "next_cursor": None,
    }
    assert call("GET", f"/events/{merchant_b}/{event_id}/attempts", key_b).status_code == 404
    assert call("POST", f"/events/{merchant_b}/{event_id}/retry", key_b).status_code == 404
    assert len(received(receiver)) == 3


async def test_webhook_toggles_set_through_intake_reach_the_dispatcher_and_a_switched_off_type_is_not_sent(
    serve: Any, dispatcher: Any, isolation: Isolation, db: Any
) -> None:
    intake, receiver, scenario = start_intake(serve, dispatcher, isolation)
    merchant = scenario.create_merchant()
    headers = {"api-key": ADMIN_KEY, "x-merchant-id": merchant}
    details = {
        "webhook_url": f"{receiver.url}/hook",
        "payment_failed_enabled": False,
        "payment_succeeded_enabled": True,
        "max_deliveries_per_second": 50,
        "retry_schedule_seconds": [30, 300],
    }
    created = httpx.post(
        f"{intake.url}/v2/profiles", json={"profile_name": "toggles", "webhook_details": details}, headers=headers
    )
    assert created.status_code == 200, created.text
    profile_id = created.json()["id"]
    assert created.json()["webhook_details"]["payment_failed_enabled"] is False  # stored, shown back
    # Carried by profile.updated into the dispatcher's projection.
    projected = await eventually(lambda: db.webhook_endpoints.find_one({"_id": profile_id}), timeout=40)
    assert projected["disabled_event_types"] == ["payment_failed"] and projected["max_deliveries_per_second"] == 50
    assert projected["retry_schedule_seconds"] == [30, 300]

    switched_off = payment_event("failed", merchant=merchant, profile_id=profile_id)
    sent = payment_event("succeeded", merchant=merchant, profile_id=profile_id)
    # The counter is the process's (other tests in this process count too): its increase is this test's.
    not_raised_before = not_raised(dispatcher)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(switched_off)
        await broker.publish(sent)
        await eventually(lambda: finished(db, sent))
        await eventually(lambda: not_raised(dispatcher) == not_raised_before + 1)
        # Switched on again by a profile update (the flag left out: unset sends, as in Hyperswitch).
        updated = httpx.put(
            f"{intake.url}/v2/profiles/{profile_id}",
            json={"webhook_details": {"webhook_url": f"{receiver.url}/hook"}},
            headers=headers,
        )
        assert updated.status_code == 200, updated.text
        await eventually(
            lambda: db.webhook_endpoints.find_one({"_id": profile_id})["disabled_event_types"] == [], timeout=40
        )
        # `webhook_details` is replaced whole: the schedule left out is the dispatcher's default again.
        assert db.webhook_endpoints.find_one({"_id": profile_id})["retry_schedule_seconds"] is None
        again = payment_event("failed", merchant=merchant, profile_id=profile_id)
        await broker.publish(again)
        await eventually(lambda: finished(db, again, "payment_failed"))
    # No event at all for the switched-off type: no claim, no record, no request.
    assert initial_of(db, switched_off, "payment_failed") is None
    assert db.webhook_claims.count_documents({"payment_id": switched_off.payload.payment_id}) == 0
    assert [d["json"]["event_type"] for d in received(receiver)] == ["payment_succeeded", "payment_failed"]
