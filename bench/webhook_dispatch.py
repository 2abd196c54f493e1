"""Webhook delivery throughput: raw aiohttp POSTs vs the dispatcher's signed and recorded deliveries.

    uv run python bench/webhook_dispatch.py [--events 3000] [--rounds 3] [--concurrency 256] [--broker]

Starts a fast local receiver (aiohttp, its own process) and SecantusDB (its own process; or MONGODB_URL),
then, in each round, measures in the same run:
- raw: aiohttp POSTs of the same body to the receiver, as fast as `--concurrency` allows, before and after;
- dispatcher: `--events` deliveries for distinct payments, each signed (HMAC-SHA512 + Standard Webhooks),
  sent, and recorded (its claim, then its record with the attempt and final status; batched writes).
  Default mode: the `payment_succeeded` handler called directly, exactly the handler the broker consumer runs,
  WITHOUT RabbitMQ (no consume, validation or acknowledgement). `--broker`: the messages are queued on
  RabbitMQ first (RABBITMQ_URL, a virtual host of the run's own) and then consumed through the runtime's
  consumer pipeline as the service configures it (lanes per payment), each acknowledged after its records are
  written; the rate is from the consumer's start to the last acknowledgement.
Prints every round (ratio = deliveries / mean of the raw rates around it) and the medians; fails when a
delivery was not recorded delivered. The machine is shared and noisy: quote the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import psutil
from harness import FAST_RECEIVER, free_port, wait_port
from pymongo import AsyncMongoClient


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def snapshot(processes: dict[str, psutil.Process], into: dict[str, float]) -> None:
    into.update((name, cpu_seconds(process)) for name, process in processes.items())


def rabbitmq_processes() -> dict[str, psutil.Process]:
    """The local RabbitMQ node (its Erlang VM), when it runs on this machine."""
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "beam.smp" and "rabbit" in " ".join(process.info["cmdline"] or []):
            return {"rabbitmq": process}
    return {}


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
    """`count` executor `payment.succeeded` messages, each for a payment of its own (the tests' builder)."""
    from support.payments import payment_succeeded, recovery_payment

    template = recovery_payment(merchant_id="bench_merchant", profile_id="pro_bench")
    return [
        payment_succeeded(template.model_copy(update={"payment_id": f"12345_pay_{os.urandom(16).hex()}"}))
        for _ in range(count)
    ]


class Dispatcher:
    """The dispatcher's handler path, set up once (database, endpoint, sender) and measured in rounds."""

    def __init__(self, mongodb_url: str, url: str, concurrency: int) -> None:
        self.mongodb_url, self.url, self.concurrency = mongodb_url, url, concurrency

    async def __aenter__(self) -> Dispatcher:
        from faststream.rabbit import RabbitBroker

        from recovery_dispatcher.adapters.event_repository import INDEXES
        from recovery_dispatcher.app import delivery_of, mongo_adapters
        from recovery_dispatcher.domain.outgoing_webhook import generate_whsec_secret
        from recovery_dispatcher.handlers.payment_events import payment_succeeded
        from recovery_dispatcher.settings import DispatcherSettings
        from recovery_runtime.bus import Publisher
        from recovery_runtime.clock import SystemClock, TimeScale
        from recovery_runtime.mongo import ensure_indexes
        from recovery_runtime.topology import QUEUES
        from recovery_runtime.unit_of_work import UnitOfWork

        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongodb_url, tz_aware=True)
        self.db = self.client[f"bench_{os.getpid()}_{int(time.time())}"]
        await ensure_indexes(self.db, INDEXES)
        await self.db.webhook_endpoints.insert_one(
            {
                "_id": "pro_bench",
                "merchant_id": "bench_merchant",
                "url": self.url,
                "enabled": True,
                "hash_key": "bench-hash-key",
                "whsec_secrets": [generate_whsec_secret()],
                "custom_headers": {},
                "version": 1,
            }
        )
        # The success path never publishes; the broker is not connected.
        publisher = Publisher(RabbitBroker("amqp://127.0.0.1:1/"))
        store = UnitOfWork(self.client, self.db, "dispatcher", publisher, SystemClock())
        # As the service builds them (recovery_dispatcher.app), the deliveries per endpoint set to the concurrency.
        settings = DispatcherSettings(
            outbound_allowed_cidrs="127.0.0.0/8",
            webhook_endpoint_concurrency=self.concurrency,
            service_instance_id="bench",
        )
        self.adapters = mongo_adapters(
            settings, db=self.db, unit_of_work=store, publisher=publisher, clock=SystemClock()
        )
        self.handler = functools.partial(payment_succeeded, delivery_of(settings, self.adapters, TimeScale(1.0)))
        self.queue = QUEUES["dispatcher.payment-succeeded"]
        self.handled = 0
        await self.rate(min(200, self.concurrency))  # warm: connections, caches, validators
        return self

    async def rate(self, count: int, started: Callable[[], None] = lambda: None) -> float:
        """Handler mode; `started` is called once the messages are built, when the measured part begins."""
        measured = envelopes(count)
        slots = asyncio.Semaphore(self.concurrency)

        async def handle(envelope: Any) -> None:
            async with slots:
                await self.handler(envelope, self.queue)

        started()
        began = time.perf_counter()
        await asyncio.gather(*(handle(e) for e in measured))
        self.handled += count
        return count / (time.perf_counter() - began)

    async def connect_broker(self, rabbitmq_url: str) -> None:
        """Broker mode: the runtime's consumer pipeline as the dispatcher uses it (lanes per payment, prefetch =
        concurrency, acknowledged after the records are written) on a virtual host of the run's own."""
        import logging

        import aio_pika
        from faststream.rabbit import Channel, RabbitBroker
        from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
        from prometheus_client import REGISTRY

        from recovery_cli.stack.vhosts import BENCH_VHOST_PREFIX, VirtualHosts, vhost_name
        from recovery_runtime.bus import Publisher
        from recovery_runtime.consumer import subscribe

        self.vhosts = VirtualHosts(rabbitmq_url)
        self.vhost = vhost_name(BENCH_VHOST_PREFIX, "dispatch")
        broker_url = await asyncio.to_thread(self.vhosts.create, self.vhost)
        # As the service configures it (recovery_runtime.service), prefetch = the dispatcher's deliveries in flight.
        logging.getLogger("recovery.broker").setLevel(logging.INFO)
        self.broker = RabbitBroker(
            broker_url,
            default_channel=Channel(prefetch_count=self.concurrency, publisher_confirms=True),
            app_id="recovery-dispatcher",
            fail_fast=False,
            logger=logging.getLogger("recovery.broker"),
            log_level=logging.DEBUG,
            middlewares=[RabbitPrometheusMiddleware(registry=REGISTRY, app_name="recovery-dispatcher")],
        )
        await self.broker.connect()
        exchange = await self.broker.declare_exchange(self.queue.exchange)
        declared = await self.broker.declare_queue(self.queue.rabbit_queue())
        await declared.bind(exchange, routing_key=self.queue.routing_key)
        router, self.subscriber = subscribe(
            self.queue.name, self.handler, Publisher(self.broker), lane_of=lambda envelope: envelope.correlation_id
        )
        self.broker.include_router(router)
        self.publishing = await aio_pika.connect(broker_url)
        self.channel = await self.publishing.channel(publisher_confirms=True)
        self.exchange = await self.channel.get_exchange(self.queue.exchange.name)
        await self.broker.start()
        await self.broker_rate(min(200, self.concurrency))  # warm

    async def broker_rate(self, count: int, started: Callable[[], None] = lambda: None) -> float:
        """Messages queued first (consumer stopped), then consumed, delivered, recorded and acknowledged;
        `started` is called when the consumer starts (the measured part)."""
        import aio_pika

        from recovery_runtime import metrics

        await self.subscriber.stop()
        bodies = [e.model_dump_json().encode() for e in envelopes(count)]
        for chunk in range(0, count, 500):
            await asyncio.gather(
                *(
                    self.exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=self.queue.routing_key,
                    )
                    for body in bodies[chunk : chunk + 500]
                )
            )
        acknowledged = metrics.MESSAGES_CONSUMED.labels(self.queue.name, "applied")
        before = acknowledged._value.get()
        started()
        began = time.perf_counter()
        await self.subscriber.start()
        while acknowledged._value.get() - before < count:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.01)
        self.handled += count
        return count / (time.perf_counter() - began)

    async def close_broker(self) -> None:
        await self.broker.stop()
        await self.publishing.close()
        await asyncio.to_thread(self.vhosts.delete, self.vhost)

    async def sample_body(self) -> bytes:
        sample = await self.db.webhook_events.find_one({"status": "delivered"})
        return bytes(sample["body"]) if sample else b"{}"

    async def delivered(self) -> int:
        return await self.db.webhook_events.count_documents({"status": "delivered"})

    async def __aexit__(self, *exc_info: object) -> None:
        await self.adapters.events.close()
        await self.adapters.sender.aclose()
        await self.client.drop_database(self.db.name)
        await self.client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="deliveries per round (and raw POSTs per half)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--broker",
        action="store_true",
        help="through RabbitMQ (RABBITMQ_URL, default the local broker): messages queued, then consumed through the "
        "runtime's consumer pipeline and acknowledged after their records are written",
    )
    args = parser.parse_args()
    import logging

    import structlog

    # Per-delivery log lines would dominate what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    processes = []
    port = free_port()
    processes.append(subprocess.Popen([sys.executable, "-c", FAST_RECEIVER, str(port)]))  # noqa: ASYNC220
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
        await asyncio.to_thread(wait_port, db_port)
    try:
        await asyncio.to_thread(wait_port, port)
        url = f"http://127.0.0.1:{port}/webhooks"
        raws, rates, ratios = [], [], []
        async with Dispatcher(mongodb_url, url, args.concurrency) as dispatcher:
            if args.broker:
                await dispatcher.connect_broker(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
            mode = "broker (RabbitMQ -> consumer -> handler -> ack)" if args.broker else "handler (no broker)"
            body = await dispatcher.sample_body()
            print(f"mode: {mode}; events: {args.events} x {args.rounds} rounds, concurrency: {args.concurrency}, "
                  f"body: {len(body)} bytes, db: {mongodb_url}", flush=True)  # fmt: skip
            measure = dispatcher.broker_rate if args.broker else dispatcher.rate
            # Where the CPU of the measured part goes, per delivery (the machine's 2 cores are the budget).
            watched = {"dispatcher": psutil.Process(), "receiver": psutil.Process(processes[0].pid)}
            if len(processes) > 1:
                watched["database"] = psutil.Process(processes[1].pid)
            if args.broker:
                watched.update(rabbitmq_processes())
            costs: dict[str, list[float]] = {name: [] for name in watched}
            for index in range(args.rounds):
                # The raw limit on both sides of the measured run: the machine is shared and noisy.
                before = await raw_rate(url, body, args.events, args.concurrency)
                cpu_before: dict[str, float] = {}
                rate = await measure(args.events, functools.partial(snapshot, watched, cpu_before))
                for name, p in watched.items():
                    costs[name].append((cpu_seconds(p) - cpu_before[name]) * 1000 / args.events)
                after = await raw_rate(url, body, args.events, args.concurrency)
                raw = (before + after) / 2
                raws.append(raw)
                rates.append(rate)
                ratios.append(rate / raw)
                print(f"  round {index + 1}: raw {before:6.0f} / {after:6.0f} requests/s, dispatcher {rate:6.0f} "
                      f"deliveries/s, ratio {rate / raw:6.1%}", flush=True)  # fmt: skip
            delivered = await dispatcher.delivered()
            handled = dispatcher.handled
            if args.broker:
                await dispatcher.close_broker()
        print(f"raw aiohttp POST rate:              {statistics.median(raws):8.0f} requests/s (median)")
        print(
            f"dispatcher signed+recorded rate:    {statistics.median(rates):8.0f} deliveries/s (median; "
            f"{delivered} of {handled} recorded delivered)"
        )
        print(f"ratio dispatcher / raw:             {statistics.median(ratios):8.1%} (median of the rounds)")
        print("CPU per delivery (ms, median of the rounds): " + ", ".join(
            f"{name} {statistics.median(values):.3f}" for name, values in costs.items()
        ) + f"; all {sum(statistics.median(v) for v in costs.values()):.3f}")  # fmt: skip
        if delivered != handled:
            raise SystemExit(f"only {delivered} of {handled} deliveries recorded delivered")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    asyncio.run(main())
