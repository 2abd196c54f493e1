"""A merchant endpoint that answers 2xx slowly beside a fast merchant's, in a dispatcher with few slots (4 in
flight, 2 per endpoint, prefetch 4), against real RabbitMQ, the MongoDB-wire server, the scheduler and receivers on
loopback.

The slow merchant's two payments failed, then were paid: each payment's `payment_failed` webhook is in flight to
the slow endpoint (its 2 slots) and its `payment_succeeded` waits behind it in the payment's lane (webhooks of a
payment go in order). Waiting there must hold nothing: the dispatcher used to take one of its in-flight slots
before the payment's turn, so the two slow deliveries and the two waiting behind them held all 4, and the fast
merchant's webhook went out only once the slow endpoint had answered, SLOW_SECONDS later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from recovery_dispatcher.app import build_service
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.serving import BackgroundServer
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually
from support.payments import payment_failed, payment_succeeded, recovery_payment, webhook_endpoint
from support.services import dispatcher_with_few_slots, settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

IN_FLIGHT, PER_ENDPOINT = 4, 2
SLOW_SECONDS = 5.0
# The fast merchant's webhook goes out within this of its message (behind the slow endpoint: ~SLOW_SECONDS).
FAST_SECONDS = 2.0


def received(receiver: BackgroundServer) -> list[dict[str, Any]]:
    deliveries: list[dict[str, Any]] = httpx.get(f"{receiver.url}/received").json()
    return deliveries


async def test_a_fast_merchants_webhook_does_not_wait_behind_a_slow_endpoint_and_the_events_queued_behind_it(
    serve: Callable[[Any], BackgroundServer], isolation: Isolation, db: Any
) -> None:
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    serve(build_service(dispatcher_with_few_slots(isolation, in_flight=IN_FLIGHT, per_endpoint=PER_ENDPOINT)))
    slow, fast = serve(receiver_app()), serve(receiver_app())
    httpx.post(
        f"{slow.url}/_receiver/config",
        json={"behaviours": [{"status": 200, "sleep_seconds": SLOW_SECONDS, "times": 100}]},
    ).raise_for_status()
    reopened = [recovery_payment(merchant_id="merchant_slow", profile_id="pro_slow") for _ in range(PER_ENDPOINT)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(webhook_endpoint(f"{slow.url}/hook", "merchant_slow", "pro_slow"))
        await broker.publish(webhook_endpoint(f"{fast.url}/hook", "merchant_fast", "pro_fast"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 2)
        for payment in reopened:
            await broker.publish(payment_failed(payment))
        await eventually(lambda: len(received(slow)) >= PER_ENDPOINT, interval=0.02)
        for payment in reopened:
            await broker.publish(payment_succeeded(payment))
        # Both wait in their payment's lane, behind its payment_failed (delivered to the dispatcher, unclaimed).
        await asyncio.sleep(0.5)
        assert db.webhook_claims.count_documents({}) == PER_ENDPOINT
        for sent in range(1, 3):
            started = time.monotonic()
            await broker.publish(
                payment_succeeded(recovery_payment(merchant_id="merchant_fast", profile_id="pro_fast"))
            )
            await eventually(lambda n=sent: len(received(fast)) >= n, interval=0.02, timeout=3 * SLOW_SECONDS)
            waited = time.monotonic() - started
            assert waited < FAST_SECONDS, f"the fast merchant's webhook waited {waited:.2f} s behind the slow endpoint"
        # Each slow payment's webhooks arrive in order, every one exactly once.
        await eventually(lambda: len(received(slow)) == 2 * PER_ENDPOINT, timeout=6 * SLOW_SECONDS)
    for payment in reopened:
        types = [
            d["json"]["event_type"]
            for d in received(slow)
            if d["json"]["content"]["object"]["id"] == payment.payment_id
        ]
        assert types == ["payment_failed", "payment_succeeded"]
