"""WebhookSender against a real local HTTP server: success, retries, redirects, timeouts, throttling, SSRF."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from recovery_cli.stack import free_port
from recovery_contracts.verification import verify_hyperswitch_signature, verify_standard_webhook
from recovery_dispatcher.adapters.sender import DeliveryTimeouts, InProcessRetry, SenderConfig, WebhookSender
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.outgoing_webhook import build_headers, generate_whsec_secret
from recovery_dispatcher.domain.policy import DeliveryOutcome
from recovery_runtime.egress import EgressGuard, EgressPolicy

pytestmark = pytest.mark.integration

BODY = b'{"merchant_id":"m","event_id":"evt_1","event_type":"payment_succeeded"}'
HASH_KEY = "hash-key"
SECRET = generate_whsec_secret()
LOOPBACK_ALLOWED = EgressPolicy.from_setting("127.0.0.0/8,::1/128")
FAST_RETRIES = InProcessRetry(max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01, budget=3.0)
# 2 s: long enough for a 20 KB answer or a localhost lookup on a loaded CI machine (0.5 s timed out there).
CONFIG = SenderConfig(timeouts=DeliveryTimeouts(connect=1.0, total=2.0), in_process_retry=FAST_RETRIES)


@dataclass
class Receiver:
    base_url: str
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[list[tuple[str, str]], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(base_url="")

    async def record(request: web.Request) -> None:
        state.hits[request.path] += 1
        headers = [(name.decode(), value.decode()) for name, value in request.raw_headers]
        state.requests.append((headers, await request.read()))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="received")

    async def flaky(request: web.Request) -> web.Response:
        await record(request)
        if state.hits[request.path] <= 2:
            return web.Response(status=500, text="try again")
        return web.Response(status=200, text="finally")

    async def moved(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPMovedPermanently(location="/ok")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        try:
            await asyncio.wait_for(state.release.wait(), timeout=5)
        except TimeoutError:
            pass
        return web.Response(text="too late")

    async def gone(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=410, text="endpoint removed")

    async def throttle(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=429, headers={"Retry-After": request.query.get("after", "120")})

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 30_000)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/moved", moved)
    app.router.add_post("/slow", slow)
    app.router.add_post("/gone", gone)
    app.router.add_post("/throttle", throttle)
    app.router.add_post("/big", big)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(EgressGuard(LOOPBACK_ALLOWED), CONFIG) as client:
        yield client


def _headers(attempt: int = 1) -> list[tuple[str, str]]:
    return build_headers(
        body=BODY,
        webhook_id="evt_1",
        timestamp=int(time.time()),
        hash_key=HASH_KEY,
        whsec_secrets=[SECRET],
        custom_headers={"X-Merchant-Tag": "blue"},
    )


async def test_200_is_delivered_signed_with_exactly_our_headers(receiver: Receiver, sender: WebhookSender) -> None:
    sent = _headers()
    result = await sender.send(f"{receiver.base_url}/ok", BODY, sent)

    assert result.verdict.outcome is DeliveryOutcome.SUCCEEDED
    assert result.status_code == 200
    assert result.response_body == "received"
    assert result.error_message is None
    assert result.duration_ms >= 0
    assert result.request_headers == tuple(sent)

    received_headers, received_body = receiver.requests[0]
    assert received_body == BODY
    # Same headers, same order, same values; names go out lowercase, as hyper (Hyperswitch) sends them.
    ours = {name.lower() for name, _ in sent}
    lowered_sent = [(name.lower(), value) for name, value in sent]
    assert [(n.lower(), v) for n, v in received_headers if n.lower() in ours] == lowered_sent
    by_name = {name.lower(): value for name, value in received_headers}
    assert by_name["host"] == receiver.base_url.removeprefix("http://")
    assert verify_hyperswitch_signature(received_body, by_name["x-webhook-signature-512"], HASH_KEY)
    verify_standard_webhook(received_body, by_name, SECRET)
    Webhook(SECRET).verify(received_body, by_name)


async def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(
    receiver: Receiver, sender: WebhookSender
) -> None:
    recorded: list[DeliveryResult] = []

    async def record(result: DeliveryResult) -> None:
        recorded.append(result)

    results = await sender.send_with_retries(f"{receiver.base_url}/flaky", BODY, _headers, on_attempt=record)

    assert [result.status_code for result in results] == [500, 500, 200]
    assert recorded == results
    assert results[-1].is_success
    assert results[0].response_body == "try again"
    webhook_ids = {dict(headers)["webhook-id"] for headers, _ in receiver.requests}
    assert webhook_ids == {"evt_1"}
    assert all(body == BODY for _, body in receiver.requests)


async def test_each_in_process_attempt_gets_fresh_headers(receiver: Receiver, sender: WebhookSender) -> None:
    asked: list[int] = []

    def headers_for(attempt: int) -> list[tuple[str, str]]:
        asked.append(attempt)
        return _headers(attempt)

    await sender.send_with_retries(f"{receiver.base_url}/flaky", BODY, headers_for)
    assert asked == [1, 2, 3]


async def test_redirect_is_a_failure_and_not_followed(receiver: Receiver, sender: WebhookSender) -> None:
    results = await sender.send_with_retries(f"{receiver.base_url}/moved", BODY, _headers)

    assert len(results) == 1  # a 3xx is not worth an in-process retry
    assert results[0].status_code == 301
    assert results[0].verdict.outcome is DeliveryOutcome.FAILED
    assert receiver.hits["/ok"] == 0


async def test_timeout_is_a_transport_error(receiver: Receiver, sender: WebhookSender) -> None:
    started = time.perf_counter()
    result = await sender.send(f"{receiver.base_url}/slow", BODY, _headers())

    assert time.perf_counter() - started < 4.5  # cut at the total timeout, not at the endpoint's 5 s
    assert result.status_code is None
    assert result.error_message == "Unable to send request to merchant server: timed out after 2 s"
    assert result.verdict.outcome is DeliveryOutcome.FAILED
    assert result.verdict.transient


async def test_connection_refused_is_a_transport_error(sender: WebhookSender) -> None:
    results = await sender.send_with_retries(f"http://127.0.0.1:{free_port()}/ok", BODY, _headers)

    assert len(results) == 3  # transient: retried in process, then left to the durable schedule
    result = results[-1]
    assert result.status_code is None
    assert result.error_message is not None
    assert result.error_message.startswith("Unable to send request to merchant server: ")
    assert "refused" in result.error_message.lower()
    assert result.verdict.should_retry


async def test_410_disables_the_endpoint(receiver: Receiver, sender: WebhookSender) -> None:
    results = await sender.send_with_retries(f"{receiver.base_url}/gone", BODY, _headers)

    assert len(results) == 1
    assert results[0].status_code == 410
    assert results[0].verdict.disables_endpoint
    assert not results[0].verdict.should_retry


async def test_429_with_retry_after_is_throttled_and_left_to_the_schedule(
    receiver: Receiver, sender: WebhookSender
) -> None:
    results = await sender.send_with_retries(f"{receiver.base_url}/throttle?after=120", BODY, _headers)

    # Waiting 120 s would cross the in-process budget: one attempt, and the verdict carries the delay.
    assert len(results) == 1
    verdict = results[0].verdict
    assert results[0].status_code == 429
    assert verdict.outcome is DeliveryOutcome.THROTTLED
    assert verdict.retry_after == timedelta(seconds=120)
    assert ("retry-after", "120") in results[0].response_headers


async def test_429_with_a_short_retry_after_is_retried_in_process(receiver: Receiver, sender: WebhookSender) -> None:
    results = await sender.send_with_retries(f"{receiver.base_url}/throttle?after=0", BODY, _headers)
    assert [result.status_code for result in results] == [429, 429, 429]


async def test_response_body_is_truncated_to_20_kb(receiver: Receiver, sender: WebhookSender) -> None:
    result = await sender.send(f"{receiver.base_url}/big", BODY, _headers())

    assert result.is_success
    assert result.response_body is not None
    assert len(result.response_body) == 20 * 1024
    assert result.response_body_truncated


async def test_localhost_is_blocked_when_loopback_is_not_allowed(receiver: Receiver) -> None:
    port = receiver.base_url.rsplit(":", 1)[1]
    async with WebhookSender(EgressGuard(EgressPolicy()), CONFIG) as guarded:
        results = await guarded.send_with_retries(f"http://localhost:{port}/ok", BODY, _headers)

    assert len(results) == 1  # blocked is final: no retry
    result = results[0]
    assert result.verdict.outcome is DeliveryOutcome.BLOCKED
    assert result.status_code is None
    assert result.error_message is not None
    assert "Unable to send request to merchant server: blocked: " in result.error_message
    assert "is a loopback address (not in OUTBOUND_ALLOWED_CIDRS)" in result.error_message
    assert "(resolved from localhost)" in result.error_message
    assert receiver.hits["/ok"] == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "blocked: 169.254.169.254 is a cloud metadata address"),
        ("http://10.0.0.1/hook", "blocked: 10.0.0.1 is a private address (not in OUTBOUND_ALLOWED_CIDRS)"),
        ("http://100.64.0.1/hook", "blocked: 100.64.0.1 is a shared (CGNAT) address"),
        ("http://[fd00::1]/hook", "blocked: fd00::1 is a unique-local address"),
        ("http://127.0.0.1:9/hook", "blocked: 127.0.0.1 is a loopback address"),
        ("http://2130706433:9/hook", "blocked: '2130706433' is a non-canonical IPv4 literal"),
        ("ftp://example.com/hook", "blocked: scheme 'ftp' is not http or https"),
    ],
)
async def test_internal_literal_addresses_are_blocked_without_a_connection(url: str, reason: str) -> None:
    async with WebhookSender(EgressGuard(EgressPolicy()), CONFIG) as guarded:
        result = await guarded.send(url, BODY, _headers())

    assert result.verdict.outcome is DeliveryOutcome.BLOCKED
    assert result.error_message is not None
    assert result.error_message.startswith(f"Unable to send request to merchant server: {reason}")
    assert result.duration_ms < 100
