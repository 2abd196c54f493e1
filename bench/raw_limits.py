"""Raw limits of the parts the pipeline is built on, measured on this machine in this run.

    uv run python bench/raw_limits.py [--repeats 3] [--quick]

- RabbitMQ (RABBITMQ_URL, default amqp://guest:guest@127.0.0.1:5672/): persistent publish with confirms to a
  quorum queue, 500 in flight; consume + ack with prefetch 200;
- MongoDB (MONGODB_URL, else SecantusDB started here as its own process, a new one for every sample: one process
  slows down for good after some tens of thousands of writes, so a figure measured after another figure's
  writes would understate the limit): insert_one sequential and 16 in flight, insert_many in batches of 1,000,
  update_one by an indexed field sequential and 16 in flight, find_one by an indexed field, a transaction of 3
  writes sequential and 16 in flight;
- HTTP: aiohttp POST of a 1 KiB body to a minimal aiohttp server in its own process, 64 concurrent and 1.
Every figure is the median of `--repeats` runs; the samples are saved in bench/results/raw_limits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiohttp
from harness import Figure, database_label, database_of_its_own, fast_receiver, median_rate, run, save, table
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

GROUP = "raw"
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


# A sample stops after this many seconds even if operations remain: the run must fit its time budget on a
# busy machine, and a rate needs a few seconds of work, not a fixed count.
SAMPLE_SECONDS = 3.0


async def in_flight(
    count: int, concurrency: int, operation: Callable[[int], Awaitable[Any]], max_seconds: float | None = None
) -> float:
    """Runs operation(i) for i < count (or until `max_seconds`) with at most `concurrency` at once; ops/s."""
    limit = SAMPLE_SECONDS if max_seconds is None else max_seconds
    next_index = done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count and time.perf_counter() - started < limit:
            index = next_index
            next_index += 1
            await operation(index)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


# ---- RabbitMQ --------------------------------------------------------------------------------------------


async def rabbit_rates(count: int) -> tuple[float, float]:
    """(publish with confirms /s, consume + ack /s) through one quorum queue of our own."""
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        name = f"bench.raw-{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        body = os.urandom(700)  # about an envelope's size
        exchange = channel.default_exchange

        async def publish(index: int) -> None:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(index))
            await exchange.publish(message, routing_key=name)

        publish_rate = await in_flight(count, 500, publish, max_seconds=60)

        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=200)
        consumer_queue = await consumer_channel.get_queue(name)
        done = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received >= count:
                done.set()

        started = time.perf_counter()
        tag = await consumer_queue.consume(on_message)
        await asyncio.wait_for(done.wait(), 120)
        consume_rate = count / (time.perf_counter() - started)
        await consumer_queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return publish_rate, consume_rate
    finally:
        await connection.close()


# ---- MongoDB ---------------------------------------------------------------------------------------------


class MongoProbe:
    def __init__(self, db: Any, count: int) -> None:
        self.db = db
        self.client = db.client
        self.count = count
        self.conflicts = 0

    def _doc(self, index: int) -> dict[str, Any]:
        # About the size of a recovery's state document's hot fields.
        return {"_id": uuid.uuid4().hex, "key": f"k{index}", "status": "pending", "version": 0, "pad": "x" * 400}

    async def fresh(self, name: str, indexed: bool = True) -> Any:
        collection = self.db[f"{name}_{uuid.uuid4().hex[:6]}"]
        if indexed:
            await collection.create_index([("key", ASCENDING)], unique=True)
        return collection

    async def insert_one(self, concurrency: int) -> float:
        collection = await self.fresh("insert_one")
        return await in_flight(self.count, concurrency, lambda i: collection.insert_one(self._doc(i)))

    async def insert_many(self) -> float:
        collection = await self.fresh("insert_many")
        total, batch = self.count * 10, 1000
        started, done = time.perf_counter(), 0
        for first in range(0, total, batch):
            await collection.insert_many([self._doc(i) for i in range(first, first + batch)], ordered=False)
            done += batch
            if time.perf_counter() - started > SAMPLE_SECONDS:
                break
        return done / (time.perf_counter() - started)

    async def update_one(self, concurrency: int) -> float:
        collection = await self.fresh("update_one")
        await collection.insert_many([self._doc(i) for i in range(self.count)])
        return await in_flight(
            self.count,
            concurrency,
            lambda i: collection.update_one({"key": f"k{i}"}, {"$set": {"status": "done"}, "$inc": {"version": 1}}),
        )

    async def find_one(self) -> float:
        collection = await self.fresh("find_one")
        await collection.insert_many([self._doc(i) for i in range(self.count)])
        return await in_flight(self.count, 1, lambda i: collection.find_one({"key": f"k{i}"}))

    async def transaction(self, concurrency: int) -> float:
        """The shape of UnitOfWork.apply: inbox insert, state update, outbox insert, in one transaction."""
        inbox, state, outbox = (
            await self.fresh("inbox", False),
            await self.fresh("state"),
            await self.fresh("out", False),
        )
        await state.insert_many([self._doc(i) for i in range(self.count)])

        async def one(index: int) -> None:
            # Retried on transient errors as UnitOfWork.apply does; concurrent transactions conflict.
            for _ in range(20):
                try:
                    async with self.client.start_session() as session:
                        async with await session.start_transaction():
                            await inbox.insert_one({"_id": uuid.uuid4().hex, "at": time.time()}, session=session)
                            await state.update_one({"key": f"k{index}"}, {"$inc": {"version": 1}}, session=session)
                            await outbox.insert_one({"_id": uuid.uuid4().hex, "body": b"x" * 700}, session=session)
                    return
                except PyMongoError as error:
                    if not error.has_error_label("TransientTransactionError"):
                        raise
                    self.conflicts += 1
                    await asyncio.sleep(0.005)
            raise RuntimeError("transaction kept conflicting")

        return await in_flight(max(self.count // 2, 50), concurrency, one)


async def on_fresh_server(sample: Callable[[MongoProbe], Awaitable[float]], count: int, conflicts: list[int]) -> float:
    """One sample on a database of its own on a server of its own (MONGODB_URL: a database of its own there); the
    write conflicts it retried are appended to `conflicts`."""
    async with database_of_its_own("bench_raw") as db:
        probe = MongoProbe(db, count)
        try:
            return await sample(probe)
        finally:
            conflicts.append(probe.conflicts)


# ---- HTTP ------------------------------------------------------------------------------------------------


async def post_rate(url: str, count: int, concurrency: int) -> float:
    body = os.urandom(512).hex().encode()  # 1 KiB, about a webhook body
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(_: int) -> None:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"receiver answered {answer.status}")

        await in_flight(min(200, count), concurrency, post)  # warm the pool
        return await in_flight(count, concurrency, post)


# ---- all of it -------------------------------------------------------------------------------------------


async def measure(repeats: int, quick: bool) -> list[Figure]:
    figures: list[Figure] = []
    scale = 0.4 if quick else 1.0

    def add(name: str, result: tuple[float, list[float]], unit: str, note: str = "") -> None:
        value, samples = result
        figures.append(Figure(GROUP, name, value, unit, samples=[round(s, 1) for s in samples], note=note))
        print(f"  {name}: {value:,.0f} {unit}", flush=True)

    rabbit_samples = [await rabbit_rates(int(4000 * scale)) for _ in range(repeats)]
    add(
        "rabbitmq publish (persistent, confirms, quorum, 500 in flight)",
        _median([p for p, _ in rabbit_samples]),
        "msg/s",
    )
    add("rabbitmq consume + ack (prefetch 200)", _median([c for _, c in rabbit_samples]), "msg/s")

    count, conflicts = int(600 * scale), [0]
    mongo: list[tuple[str, Callable[[MongoProbe], Awaitable[float]], str]] = [
        ("mongodb insert_one sequential", lambda probe: probe.insert_one(1), "op/s"),
        ("mongodb insert_one 16 in flight", lambda probe: probe.insert_one(16), "op/s"),
        ("mongodb insert_many (batches of 1,000)", MongoProbe.insert_many, "doc/s"),
        ("mongodb update_one by indexed field sequential", lambda probe: probe.update_one(1), "op/s"),
        ("mongodb update_one by indexed field 16 in flight", lambda probe: probe.update_one(16), "op/s"),
        ("mongodb find_one by indexed field sequential", MongoProbe.find_one, "op/s"),
        ("mongodb transaction of 3 writes sequential", lambda probe: probe.transaction(1), "tx/s"),
        ("mongodb transaction of 3 writes 16 in flight", lambda probe: probe.transaction(16), "tx/s"),
    ]
    label = database_label(os.environ.get("MONGODB_URL", ""))
    for index, (name, sample, unit) in enumerate(mongo):
        conflicts.clear()
        result = await median_rate(lambda sample=sample: on_fresh_server(sample, count, conflicts), repeats)
        note = label if index == 0 else ""
        if "transaction" in name and "16" in name:
            note = f"{sum(conflicts)} write conflicts retried"
        add(name, result, unit, note)

    with fast_receiver() as receiver:
        count = int(4000 * scale)
        add(
            "aiohttp POST 1 KiB, 64 concurrent",
            await median_rate(lambda: post_rate(receiver, count, 64), repeats),
            "req/s",
        )
        add(
            "aiohttp POST 1 KiB, 1 at a time",
            await median_rate(lambda: post_rate(receiver, count // 4, 1), repeats),
            "req/s",
        )
    return figures


def _median(values: list[float]) -> tuple[float, list[float]]:
    import statistics

    return statistics.median(values), values


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer operations per sample (smoke test)")
    args = parser.parse_args()
    figures = await measure(args.repeats, args.quick)
    path = save("raw_limits", figures)
    print(table(figures))
    print(f"(medians of {args.repeats} runs; samples in {path})")


if __name__ == "__main__":
    run(main)
