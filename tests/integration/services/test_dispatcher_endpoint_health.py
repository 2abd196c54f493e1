"""Endpoint health in the webhook dispatcher: the circuit breaker per endpoint (profile, URL), shared by the
dispatchers through MongoDB, and the automatic disable.

Real RabbitMQ (the test's vhost), the MongoDB-wire server, the scheduler (durable retries and holds are its
timers) and real HTTP receivers. Durations are settings in schedule time at TIME_SCALE 1000 (1,000 s of
schedule = 1 s of wall-clock time); the assertions read what the receivers saw and what the dispatcher
stored and published, so a breaker that does not pause, a probe that does not go out alone, a backlog that
is not drained or an endpoint that is never (or too early) disabled fails them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import PaymentSucceeded, ProfileUpdated
from recovery_dispatcher.app import build_service
from recovery_dispatcher.settings import DispatcherSettings
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually, operational_events
from support.payments import payment_succeeded, recovery_payment
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

MERCHANT = "merchant_health"
HASH_KEY = "hash-key-for-endpoint-health"
SCALE = 1000.0  # settings_for's TIME_SCALE: schedule seconds per wall-clock second
BREAKER_FAILURES = 3
COOLDOWN = 3.0  # wall-clock seconds of the breaker's first pause (doubled after a failed probe)
PROBE_SECONDS = 0.5  # how long the receiver takes to answer the successful probe
DISABLE_AFTER = 3.0  # wall-clock seconds of failure without a success before the endpoint is disabled
RETRY_EVERY = 0.5  # wall-clock seconds between durable retries
CIRCUITS_OPEN = re.compile(r"^recovery_webhook_circuits_open\s+([0-9.eE+-]+)$", re.MULTILINE)


def start_dispatcher(serve: Any, isolation: Isolation, **overrides: Any) -> Any:
    settings = {
        "outbound_allowed_cidrs": "127.0.0.0/8",
        "webhook_total_timeout_seconds": 1.0,
        # One attempt per delivery: every failure the breaker counts is one request the receiver saw.
        "webhook_in_process_attempts": 1,
        "webhook_breaker_failures": BREAKER_FAILURES,
        "webhook_breaker_cooldown_seconds": COOLDOWN * SCALE,
        "webhook_breaker_max_cooldown_seconds": 4 * COOLDOWN * SCALE,
        **overrides,
    }
    return serve(build_service(settings_for(DispatcherSettings, isolation, **settings)))


def start_scheduler(serve: Any, isolation: Isolation) -> Any:
    return serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))


def endpoint(url: str, profile_id: str, *, version: int = 1) -> Envelope[ProfileUpdated]:
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=MERCHANT,
        profile_id=profile_id,
        payload=ProfileUpdated(
            profile_id=profile_id,
            merchant_id=MERCHANT,
            version=version,
            webhook_url=url,
            payment_response_hash_key=HASH_KEY,
            # Durable retries every RETRY_EVERY seconds, plenty of them: the breaker or the disable decides.
            webhook_retry_schedule_seconds=(RETRY_EVERY * SCALE,) * 30,
        ),
    )


def succeeded(profile_id: str) -> Envelope[PaymentSucceeded]:
    return payment_succeeded(recovery_payment(merchant_id=MERCHANT, profile_id=profile_id))


def behave(receiver: Any, *behaviours: dict[str, Any]) -> None:
    httpx.post(f"{receiver.url}/_receiver/config", json={"behaviours": list(behaviours)}).raise_for_status()


def received(receiver: Any) -> list[dict[str, Any]]:
    return httpx.get(f"{receiver.url}/received").json()


def at(delivery: dict[str, Any]) -> float:
    return datetime.fromisoformat(delivery["received_at"].replace("Z", "+00:00")).timestamp()


def record_of(db: Any, event: Envelope[Any]) -> dict[str, Any] | None:
    key = idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    return db.webhook_events.find_one({"idempotent_event_id": key, "delivery_attempt": "initial_attempt"})


def all_held(db: Any, events: list[Envelope[Any]]) -> list[dict[str, Any]] | None:
    """The records of `events` once every one of them is held (a timer instead of a request), else None."""
    records = [r for e in events if (r := record_of(db, e)) and r.get("holds")]
    return records if len(records) == len(events) else None


def unanswered(db: Any, event: Envelope[Any]) -> int:
    """The attempts of `event` the dispatcher recorded without an answer (its WEBHOOK_TOTAL_TIMEOUT_SECONDS ran
    out first): the receiver may have answered 200 all the same."""
    initial = record_of(db, event)
    assert initial is not None
    attempts = db.webhook_events.find({"initial_attempt_id": initial["event_id"], "request": {"$ne": None}})
    return sum(1 for attempt in attempts if attempt["response"]["status_code"] is None)


def assert_each_delivered_at_least_once(db: Any, successes: list[dict[str, Any]], events: list[Envelope[Any]]) -> None:
    """Every event reached the receiver with a 200, and a second copy only where the guarantee allows one
    (docs/webhooks.md, "Delivery guarantee": at-least-once on the wire): after an attempt whose answer the
    dispatcher did not get in time (under load, the probe's slow 200 can outlast the 1 s timeout; the event is
    then retried with the same webhook-id). A copy sent while the circuit was open, or of an event whose 200 the
    dispatcher did get, fails this."""
    seen = Counter(d["json"]["event_id"] for d in successes)
    for event in events:
        record = record_of(db, event)
        assert record is not None
        copies = seen.pop(record["event_id"], 0)
        assert 1 <= copies <= 1 + unanswered(db, event), (record["event_id"], copies)
    assert not seen, f"deliveries of events the test did not raise: {seen}"


def circuits_open(dispatcher: Any) -> float:
    text = httpx.get(f"{dispatcher.url}/metrics").text
    found = CIRCUITS_OPEN.search(text)
    return float(found.group(1)) if found else 0.0


async def next_of_type(queue: aio_pika.abc.AbstractQueue, kind: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        event = json.loads(message.body)
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} operational event within {timeout} s")


async def test_circuit_opens_pauses_the_url_probes_and_drains_the_backlog_while_a_healthy_endpoint_flows(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    start_scheduler(serve, isolation)
    dispatcher = start_dispatcher(serve, isolation)
    bad, good = serve(receiver_app()), serve(receiver_app())
    # The bad endpoint fails BREAKER_FAILURES deliveries and the first probe, then recovers (the successful
    # probe answers slowly: anything sent alongside it would arrive before its answer).
    behave(bad, {"status": 500, "times": BREAKER_FAILURES + 1}, {"status": 200, "sleep_seconds": PROBE_SECONDS})
    first_wave = [succeeded("pro_bad") for _ in range(BREAKER_FAILURES)]
    backlog = [succeeded("pro_bad") for _ in range(4)]
    healthy = succeeded("pro_good")
    baseline = circuits_open(dispatcher)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{bad.url}/hook", "pro_bad"))
        await broker.publish(endpoint(f"{good.url}/hook", "pro_good"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 2)
        for event in first_wave:
            await broker.publish(event)
        # Each failed once: the circuit of the bad URL opened.
        await eventually(lambda: all((record_of(db, e) or {}).get("attempts") == 1 for e in first_wave))
        await eventually(lambda: circuits_open(dispatcher) == baseline + 1)
        opened = time.time()
        for event in backlog:
            await broker.publish(event)

        # While the circuit is open the backlog is held (recorded, with the reason), not sent.
        held = await eventually(lambda: all_held(db, backlog))
        assert {r["status"] for r in held} == {"retry_scheduled"}
        assert {r["status_reason"] for r in held} == {f"circuit open for {bad.url}/hook"}
        assert all(r.get("request") is None and r.get("attempts", 0) == 0 for r in held)
        # The healthy merchant is not held up by the bad one.
        started = time.monotonic()
        await broker.publish(healthy)
        await eventually(lambda: received(good), interval=0.02)
        assert time.monotonic() - started < 2.0
        assert len(received(bad)) == BREAKER_FAILURES
        assert time.time() - opened < COOLDOWN, "the machine was too slow to observe the open circuit"

        everything = [*first_wave, *backlog]
        await eventually(
            lambda: all((record_of(db, e) or {}).get("status") == "delivered" for e in everything), timeout=40
        )
        await eventually(lambda: circuits_open(dispatcher) == baseline)

    deliveries = received(bad)
    statuses = [d["response"]["status"] for d in deliveries]
    # BREAKER_FAILURES failures, one failed probe, then only successes: every event once, once more only after
    # an attempt the dispatcher got no answer to (at-least-once); nothing was attempted while the circuit was
    # open (a held delivery that went out anyway would be one more request).
    failures = BREAKER_FAILURES + 1
    assert statuses == [500] * failures + [200] * (len(deliveries) - failures)
    assert_each_delivered_at_least_once(db, deliveries[failures:], everything)
    times = [at(d) for d in deliveries]
    opening, first_probe, second_probe = (
        times[BREAKER_FAILURES - 1],
        times[BREAKER_FAILURES],
        times[BREAKER_FAILURES + 1],
    )
    # Paused for the cooldown, then one probe; it failed, so the pause doubled before the next probe.
    assert first_probe - opening >= COOLDOWN * 0.95
    assert second_probe - first_probe >= 2 * COOLDOWN * 0.95
    # The probe went out alone: the backlog followed only after its success.
    assert times[BREAKER_FAILURES + 2] - second_probe >= PROBE_SECONDS * 0.9
    assert len(received(good)) == 1


async def test_a_second_dispatcher_finds_the_breaker_the_first_opened_and_sends_the_one_probe(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    start_scheduler(serve, isolation)
    cooldown = 8.0  # long enough to start the second dispatcher while the circuit is open
    overrides = {"webhook_breaker_cooldown_seconds": cooldown * SCALE}
    first = start_dispatcher(serve, isolation, **overrides)
    bad = serve(receiver_app())
    behave(bad, {"status": 500, "times": BREAKER_FAILURES}, {"status": 200, "sleep_seconds": PROBE_SECONDS})
    first_wave = [succeeded("pro_bad") for _ in range(BREAKER_FAILURES)]
    backlog = [succeeded("pro_bad") for _ in range(4)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{bad.url}/hook", "pro_bad"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        for event in first_wave:
            await broker.publish(event)
        stored = await eventually(
            lambda: (doc := db.endpoint_health.find_one({"profile_id": "pro_bad"})) and doc["state"] == "open" and doc
        )
        opened = time.time()
        # The first dispatcher goes; another (a replica, or the first one restarted) carries on.
        first.stop()
        start_dispatcher(serve, isolation, **overrides)
        for event in backlog:
            await broker.publish(event)
        held = await eventually(lambda: all_held(db, backlog))
        assert time.time() - opened < cooldown, "the machine was too slow to observe the open circuit"
        # The second dispatcher did not start from a closed breaker of its own: nothing more was sent.
        assert len(received(bad)) == BREAKER_FAILURES
        assert {r["status_reason"] for r in held} == {f"circuit open for {bad.url}/hook"}
        everything = [*first_wave, *backlog]
        await eventually(
            lambda: all((record_of(db, e) or {}).get("status") == "delivered" for e in everything), timeout=60
        )
    assert (stored["url"], stored["consecutive_failures"]) == (f"{bad.url}/hook", BREAKER_FAILURES)
    deliveries = received(bad)
    # The first dispatcher's failures, then only successes: every event once, once more only after an attempt
    # the dispatcher got no answer to (at-least-once: the probe's slow 200 may outlast the timeout under load).
    statuses = [d["response"]["status"] for d in deliveries]
    assert statuses == [500] * BREAKER_FAILURES + [200] * (len(deliveries) - BREAKER_FAILURES)
    assert_each_delivered_at_least_once(db, deliveries[BREAKER_FAILURES:], everything)
    times = [at(d) for d in deliveries]
    # One probe after the cooldown, alone: the backlog followed its success.
    assert times[BREAKER_FAILURES] - times[BREAKER_FAILURES - 1] >= cooldown * 0.95
    assert times[BREAKER_FAILURES + 1] - times[BREAKER_FAILURES] >= PROBE_SECONDS * 0.9
    closed = db.endpoint_health.find_one({"profile_id": "pro_bad"})
    assert (closed["state"], closed["consecutive_failures"]) == ("closed", 0)


async def test_an_endpoint_failing_for_the_disable_period_is_disabled_with_an_operational_event(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    start_scheduler(serve, isolation)
    # The breaker out of the way (it would only space the attempts out): the disable period decides.
    start_dispatcher(
        serve, isolation, webhook_breaker_failures=1000, webhook_disable_after_seconds=DISABLE_AFTER * SCALE
    )
    bad, good = serve(receiver_app()), serve(receiver_app())
    behave(bad, {"status": 503, "times": 1000})
    failing, later, healthy = succeeded("pro_bad"), succeeded("pro_bad"), succeeded("pro_good")
    async with (
        operational_events(isolation.rabbitmq_url) as alerts,
        broker_probe(isolation.rabbitmq_url) as broker,
    ):
        await broker.publish(endpoint(f"{bad.url}/hook", "pro_bad"))
        await broker.publish(endpoint(f"{good.url}/hook", "pro_good"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 2)
        await broker.publish(failing)
        disabled = await next_of_type(alerts, "webhook.endpoint-disabled", timeout=30)
        record = await eventually(lambda: (r := record_of(db, failing)) and r["status"] == "failed" and r, timeout=20)
        await broker.publish(healthy)
        await broker.publish(later)
        refused = await eventually(lambda: (r := record_of(db, later)) and r["status"] == "failed" and r)
        await eventually(lambda: received(good))
        sent_while_disabled = len(received(bad))
        stored_reason = db.webhook_endpoints.find_one({"_id": "pro_bad"}).get("disabled_reason")
        # The merchant fixed the endpoint and updated the profile: enabled again.
        behave(bad)
        await broker.publish(endpoint(f"{bad.url}/hook", "pro_bad", version=2))
        await eventually(lambda: "disabled_reason" not in db.webhook_endpoints.find_one({"_id": "pro_bad"}))
        again = succeeded("pro_bad")
        await broker.publish(again)
        await eventually(lambda: (record_of(db, again) or {}).get("status") == "delivered")

    payload = disabled["payload"]
    assert payload["profile_id"] == "pro_bad" and payload["merchant_id"] == MERCHANT
    assert payload["url"] == f"{bad.url}/hook"
    assert payload["reason"].startswith("failing since ")
    attempts = received(bad)[:sent_while_disabled]
    first_failure = at(attempts[0])
    failing_since = datetime.fromisoformat(payload["failing_since"]).timestamp()
    disabled_at = datetime.fromisoformat(payload["disabled_at"]).timestamp()
    # Failing since the first failed attempt; disabled only once the period had passed, not earlier.
    assert abs(failing_since - first_failure) < 1.0
    assert disabled_at - failing_since >= DISABLE_AFTER
    assert disabled_at - failing_since < DISABLE_AFTER + 10 * RETRY_EVERY
    assert len(attempts) >= 2
    assert {a["response"]["status"] for a in attempts} == {503}
    assert stored_reason == payload["reason"]
    # The event that was failing ends failed (no more retries); so does a new one, without a request.
    assert record["status_reason"] == f"endpoint disabled: {payload['reason']}"
    assert refused["status_reason"] == f"endpoint disabled: {payload['reason']}"
    assert refused.get("request") is None
    assert all(a["json"]["event_id"] != refused["event_id"] for a in received(bad))
    assert [a["response"]["status"] for a in received(bad)[sent_while_disabled:]] == [200]
    # One bad merchant does not hold up another.
    assert len(received(good)) == 1


async def test_a_success_resets_the_failure_period(serve: Any, isolation: Isolation, db: Any) -> None:
    start_scheduler(serve, isolation)
    disable_after = 5.0
    start_dispatcher(
        serve, isolation, webhook_breaker_failures=1000, webhook_disable_after_seconds=disable_after * SCALE
    )
    bad = serve(receiver_app())
    # Failing for half the period, one success, failing again for half the period: failures and the one
    # success together outlast the period, a failure "without a single success" never does: stays enabled.
    streak = int(disable_after / 2 / RETRY_EVERY)
    behave(bad, {"status": 500, "times": streak}, {"status": 200}, {"status": 500, "times": streak}, {"status": 200})
    first, second = succeeded("pro_bad"), succeeded("pro_bad")
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{bad.url}/hook", "pro_bad"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        await broker.publish(first)
        await eventually(lambda: (record_of(db, first) or {}).get("status") == "delivered", timeout=30)
        await broker.publish(second)
        await eventually(lambda: (record_of(db, second) or {}).get("status") == "delivered", timeout=30)
    deliveries = received(bad)
    assert [d["response"]["status"] for d in deliveries] == [500] * streak + [200] + [500] * streak + [200]
    assert at(deliveries[-1]) - at(deliveries[0]) > disable_after, "the test must span more than the period"
    stored = db.webhook_endpoints.find_one({"_id": "pro_bad"})
    assert "disabled_reason" not in stored and "failing_since" not in stored


async def test_a_retry_whose_dispatcher_stopped_mid_send_is_taken_over_once_its_lease_ran_out(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    """The first dispatcher is cut off in the middle of a retry's request (its grace period ends while the receiver
    still holds the answer): its message goes back to the broker while the event is `delivering` under its lease.
    The second dispatcher gets the message, puts it back until that lease has run out, then makes the retry."""
    start_scheduler(serve, isolation)
    lease = 3.0
    overrides = {
        "webhook_breaker_failures": 1000,
        "webhook_total_timeout_seconds": 30.0,  # the held answer is not a timeout: the dispatcher is stopped first
        "webhook_delivery_lease_seconds": lease,
        "shutdown_grace_seconds": 0.5,
    }
    first = start_dispatcher(serve, isolation, **overrides)
    receiver = serve(receiver_app())
    behave(receiver, {"status": 500, "times": 1}, {"status": 200, "sleep_seconds": 20, "times": 1}, {"status": 200})
    event = succeeded("pro_cut")
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook", "pro_cut"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        await broker.publish(event)
        # The initial attempt failed; the retry's request has reached the receiver, which holds the answer.
        await eventually(lambda: len(received(receiver)) == 2, timeout=30)
        taken = (record_of(db, event) or {}).get("lease_until")
        assert (record_of(db, event) or {}).get("status") == "delivering" and taken is not None
        first.stop()
        start_dispatcher(serve, isolation, **overrides)
        await eventually(lambda: (record_of(db, event) or {}).get("status") == "delivered", timeout=60)
    deliveries = received(receiver)
    assert [d["response"]["status"] for d in deliveries] == [500, 200, 200]
    assert len({d["json"]["event_id"] for d in deliveries}) == 1  # one event, its webhook-id on every request
    # The second dispatcher sent the retry again only after the first one's lease had run out.
    assert at(deliveries[2]) >= taken.timestamp() - 0.05
