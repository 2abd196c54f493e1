"""Webhook delivery throughput: raw aiohttp POSTs vs the dispatcher's signed and recorded deliveries.

    uv run python bench/webhook_dispatch.py [--events 3000] [--concurrency 256]

Starts a fast local receiver (aiohttp, its own process) and SecantusDB (its own process; or MONGODB_URL),
then measures in the same run:
- raw: aiohttp POSTs of the same body to the receiver, as fast as `--concurrency` allows;
- dispatcher: `WebhookDispatcher.payment_succeeded` for distinct payments: build the body, claim the
  idempotent event record, sign (HMAC-SHA512 + Standard Webhooks), send, record the attempt and the final
  status (write-behind batches), exactly the handler the broker consumer runs (the broker itself excluded).
Prints both rates and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

RECEIVER = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text='{"received":true}', content_type="application/json")
app = web.Application()
app.router.add_post("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30.0
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def raw_rate(url: str, body: bytes, count: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        slots = asyncio.Semaphore(concurrency)

        async def post() -> None:
            async with slots, session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200

        await asyncio.gather(*(post() for _ in range(min(200, count))))  # warm the pool
        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(count)))
        return count / (time.perf_counter() - started)


def envelopes(count: int) -> list[Any]:
    from recovery_contracts.envelope import Envelope, MessageType
    from recovery_contracts.ids import new_attempt_id
    from recovery_contracts.messages import PaymentSucceeded
    from recovery_contracts.payments import IntentStatus
    from recovery_contracts.recovery import AttemptSummary, build_payment_object
    from support.payments import recovery_payment

    now = datetime.now(UTC)
    template = recovery_payment(merchant_id="bench_merchant", profile_id="pro_bench")
    out = []
    for _ in range(count):
        payment = template.model_copy(update={"payment_id": f"12345_pay_{os.urandom(16).hex()}"})
        out.append(
            Envelope[PaymentSucceeded](
                type=MessageType.PAYMENT_SUCCEEDED,
                correlation_id=payment.payment_id,
                merchant_id="bench_merchant",
                profile_id="pro_bench",
                payload=PaymentSucceeded(
                    payment_id=payment.payment_id,
                    attempt_id=new_attempt_id("12345"),
                    attempt_number=1,
                    token="pm_card_visa",
                    connector_transaction_id="pi_123",
                    succeeded_at=now,
                    payment=build_payment_object(
                        payment,
                        status=IntentStatus.SUCCEEDED,
                        modified_at=now,
                        attempt=AttemptSummary(
                            total_retry_count=2, token="pm_card_visa", connector_transaction_id="pi_123"
                        ),
                    ),
                ),
            )
        )
    return out


async def dispatcher_rate(mongodb_url: str, url: str, count: int, concurrency: int) -> tuple[float, int, bytes]:
    from faststream.rabbit import RabbitBroker

    from recovery_dispatcher.adapters.delivery import SenderConfig, WebhookSender
    from recovery_dispatcher.adapters.record_writer import RecordWriter
    from recovery_dispatcher.adapters.ssrf import SsrfGuard, SsrfPolicy
    from recovery_dispatcher.adapters.store import INDEXES, EndpointStore, EventStore
    from recovery_dispatcher.domain.policy import HYPERSWITCH_RETRY_SCHEDULE
    from recovery_dispatcher.domain.signing import generate_whsec_secret
    from recovery_dispatcher.handlers import WebhookDispatcher
    from recovery_runtime.bus import Publisher
    from recovery_runtime.clock import SystemClock, TimeScale
    from recovery_runtime.mongo import ensure_indexes
    from recovery_runtime.topology import QUEUES
    from recovery_runtime.unit_of_work import MessageStore

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    db = client[f"bench_{os.getpid()}_{int(time.time())}"]
    await ensure_indexes(db, INDEXES)
    await db.webhook_endpoints.insert_one(
        {
            "_id": "pro_bench",
            "merchant_id": "bench_merchant",
            "url": url,
            "enabled": True,
            "hash_key": "bench-hash-key",
            "whsec_secrets": [generate_whsec_secret()],
            "custom_headers": {},
            "version": 1,
        }
    )
    events = EventStore(db)
    # The success path never publishes; the broker is not connected.
    publisher = Publisher(RabbitBroker("amqp://127.0.0.1:1/"))
    store = MessageStore(client, db, "dispatcher", publisher, SystemClock())
    dispatcher = WebhookDispatcher(
        store=store,
        events=events,
        endpoints=EndpointStore(db, cache_seconds=60),
        writer=RecordWriter(events.collection),
        sender_factory=lambda: WebhookSender(
            SsrfGuard(SsrfPolicy.from_setting("127.0.0.0/8")), SenderConfig(max_connections_per_host=64)
        ),
        clock=SystemClock(),
        time_scale=TimeScale(1.0),
        schedule=HYPERSWITCH_RETRY_SCHEDULE,
        lease=timedelta(seconds=60),
        instance_id="bench",
        user_agent="recovery-engine-webhooks/1",
        endpoint_concurrency=concurrency,
    )
    await dispatcher.start()
    queue = QUEUES["dispatcher.payment-succeeded"]
    warm, measured = envelopes(min(200, count)), envelopes(count)
    slots = asyncio.Semaphore(concurrency)

    async def handle(envelope: Any) -> None:
        async with slots:
            await dispatcher.payment_succeeded(envelope, queue)

    await asyncio.gather(*(handle(e) for e in warm))
    started = time.perf_counter()
    await asyncio.gather(*(handle(e) for e in measured))
    rate = count / (time.perf_counter() - started)
    delivered = await db.webhook_events.count_documents({"status": "delivered"})
    sample = await db.webhook_events.find_one({"status": "delivered"})
    await dispatcher.close()
    await client.drop_database(db.name)
    await client.close()
    return rate, delivered - len(warm), bytes(sample["body"]) if sample else b""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    import logging

    import structlog

    # Per-delivery log lines would dominate what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    processes = []
    port = free_port()
    processes.append(subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)]))  # noqa: ASYNC220
    mongodb_url = os.environ.get("MONGODB_URL")
    if not mongodb_url:
        db_port = free_port()
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(db_port),
                 "--storage-path", ":memory:"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        mongodb_url = f"mongodb://127.0.0.1:{db_port}/?directConnection=true"
        await wait_port(db_port)
    try:
        await wait_port(port)
        url = f"http://127.0.0.1:{port}/webhooks"
        rate, delivered, body = await dispatcher_rate(mongodb_url, url, args.events, args.concurrency)
        raw = await raw_rate(url, body or b"{}", args.events, args.concurrency)
        print(f"events: {args.events}, concurrency: {args.concurrency}, body: {len(body)} bytes, db: {mongodb_url}")
        print(f"raw aiohttp POST rate:              {raw:8.0f} requests/s")
        print(f"dispatcher signed+recorded rate:    {rate:8.0f} deliveries/s ({delivered} recorded delivered)")
        print(f"ratio dispatcher / raw:             {rate / raw:8.1%}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    asyncio.run(main())
