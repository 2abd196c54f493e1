"""The scheduler's durable timers against the MongoDB-wire server and real RabbitMQ: claims by competing
instances, a crashed instance's claim, failed publishes and re-plans, catch-up through a backlog, adaptive polling.

The timer loops run in the test's event loop with a clock the test moves (lease expiry without waiting 30 s);
the database, the broker and the publisher are the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.rabbit import Channel, RabbitBroker
from pymongo import AsyncMongoClient

from recovery_contracts.envelope import MessageType
from recovery_runtime.bus import OutgoingMessage, Publisher
from recovery_runtime.mongo import ensure_indexes
from recovery_runtime.topology import declare_topology
from recovery_scheduler.adapters.timers import CLAIMS, INDEXES, MongoTimerRepository, TimerKind, timer_document
from recovery_scheduler.timer_loop import TimerLoop
from support.broker import BrokerProbe, broker_probe
from support.stack import Isolation

QUEUE = "dispatcher.deliver-webhook"
LEASE = timedelta(seconds=30)


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
async def database(isolation: Isolation) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(isolation.mongodb_url, tz_aware=True)
    db = client[isolation.mongodb_database]
    await ensure_indexes(db, INDEXES)
    yield db
    await client.close()


@pytest.fixture
async def broker(isolation: Isolation) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(isolation.rabbitmq_url, default_channel=Channel(publisher_confirms=True))
    await broker.connect()
    await declare_topology(broker)
    yield broker
    await broker.stop()


@pytest.fixture
async def probe(isolation: Isolation, broker: RabbitBroker) -> AsyncIterator[BrokerProbe]:
    async with broker_probe(isolation.rabbitmq_url) as probe:
        yield probe


def message_timer(index: int, due: datetime, label: str = "t") -> dict[str, Any]:
    message = OutgoingMessage(f"{label}-{index}", MessageType.DELIVER_WEBHOOK, b"{}", f"pay_{index}")
    return timer_document(
        f"{label}:{index}", kind=TimerKind.MESSAGE, due_at=due, payment_id=f"pay_{index}", created_at=due,
        message=message, purpose="test",
    )  # fmt: skip


def loop(database: Any, broker: RabbitBroker, owner: str, clock: MovableClock, **options: Any) -> TimerLoop:
    async def replan(payment_id: str) -> None:
        return None

    settings: dict[str, Any] = {"poll_seconds": 0.05, "batch_size": 50, "lease": LEASE, "replan": replan} | options
    return TimerLoop(
        MongoTimerRepository(database), Publisher(broker), settings.pop("replan"), clock, owner, **settings
    )  # fmt: skip


async def drain(probe: BrokerProbe, quiet: float = 0.5) -> list[str]:
    """Every message id on the queue until it stays empty for `quiet` seconds."""
    queue = await probe.channel.declare_queue(QUEUE, passive=True)
    ids: list[str] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < quiet:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.02)
            continue
        assert message.message_id is not None
        ids.append(message.message_id)
        idle_since = time.monotonic()
    return ids


async def until_idle(loops: list[TimerLoop]) -> None:
    """Each loop claims and fires until a round in which none of them fired anything."""
    while sum(await asyncio.gather(*(one.fire_due() for one in loops))):
        pass


async def test_competing_instances_fire_every_timer_exactly_once_within_a_lease(
    database: Any, broker: RabbitBroker, probe: BrokerProbe
) -> None:
    clock = MovableClock()
    now = clock.now()
    await database.timers.insert_many([message_timer(i, now - timedelta(milliseconds=600 - i)) for i in range(600)])
    loops = [loop(database, broker, f"scheduler-{n}", clock) for n in range(3)]

    await until_idle(loops)

    ids = await drain(probe)
    assert len(ids) == 600
    assert sorted(ids) == sorted(f"t-{i}" for i in range(600))  # none lost, none twice
    timers = await database.timers.find({}).to_list(None)
    assert {t["status"] for t in timers} == {"fired"}
    assert {t["claims"] for t in timers} == {1}
    assert len({t["lease_owner"] for t in timers}) > 1  # the instances shared the work
    assert await database[CLAIMS].count_documents({}) == 0


async def test_a_crashed_instance_claim_is_fired_again_by_another_once_its_lease_expires(
    database: Any, broker: RabbitBroker, probe: BrokerProbe
) -> None:
    clock = MovableClock()
    now = clock.now()
    await database.timers.insert_many([message_timer(i, now - timedelta(seconds=1)) for i in range(40)])
    # Instance A claims the batch and dies before publishing anything.
    crashed = await MongoTimerRepository(database).claim_due(now, "scheduler-a", LEASE, 50)
    assert len(crashed.timers) == 40
    survivor = loop(database, broker, "scheduler-b", clock)

    assert await survivor.fire_due() == 0  # within A's lease: B leaves A's claim alone
    assert await drain(probe, quiet=0.3) == []

    clock.offset = LEASE + timedelta(seconds=1)
    survivor._next_release = None  # the periodic check, due now
    assert await survivor.fire_due() == 40
    assert sorted(await drain(probe)) == sorted(f"t-{i}" for i in range(40))
    assert await database.timers.count_documents({"status": "fired"}) == 40
    assert await database[CLAIMS].count_documents({}) == 0
    # Taken over once: a third instance finds nothing more to fire.
    assert await loop(database, broker, "scheduler-c", clock).fire_due() == 0


async def test_a_batch_whose_publish_fails_is_given_back_at_once_and_fires_later(
    database: Any, broker: RabbitBroker, probe: BrokerProbe, isolation: Isolation
) -> None:
    clock = MovableClock()
    now = clock.now()
    await database.timers.insert_many([message_timer(i, now - timedelta(seconds=1)) for i in range(10)])
    gone = RabbitBroker(isolation.rabbitmq_url, default_channel=Channel(publisher_confirms=True))
    await gone.connect()
    await gone.stop()  # a broker connection that is closed: every publish fails

    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises for a closed connection
        await loop(database, gone, "scheduler-a", clock).fire_due()
    assert await database.timers.count_documents({"status": "pending"}) == 10
    assert await database.timers.count_documents({"claim_id": {"$exists": True}}) == 0
    assert await database[CLAIMS].count_documents({}) == 0

    assert await loop(database, broker, "scheduler-b", clock).fire_due() == 10
    assert len(await drain(probe)) == 10


async def test_a_failing_replan_is_retried_after_a_lease_and_the_rest_of_its_batch_fires(
    database: Any, broker: RabbitBroker
) -> None:
    clock = MovableClock()
    now = clock.now()
    replans = [
        timer_document(f"replan:pay_{i}:1", kind=TimerKind.REPLAN, due_at=now - timedelta(seconds=1),
                       payment_id=f"pay_{i}", created_at=now, purpose="replan")
        for i in range(3)
    ]  # fmt: skip
    await database.timers.insert_many(replans)
    calls: list[str] = []

    async def replan(payment_id: str) -> None:
        calls.append(payment_id)
        if payment_id == "pay_1" and calls.count(payment_id) == 1:
            raise RuntimeError("the database hiccuped")

    timers = loop(database, broker, "scheduler-a", clock, replan=replan)
    assert await timers.fire_due() == 2
    failed = await database.timers.find_one({"_id": "replan:pay_1:1"})
    assert failed["status"] == "leased"
    assert await timers.fire_due() == 0  # backed off for a lease, not retried in a tight loop

    clock.offset = LEASE + timedelta(seconds=1)
    timers._next_release = None
    assert await timers.fire_due() == 1
    assert sorted(calls) == ["pay_0", "pay_1", "pay_1", "pay_2"]
    assert await database.timers.count_documents({"status": "fired"}) == 3


async def test_a_backlog_is_fired_in_due_order_by_windows_and_timers_sharing_a_due_time_are_all_fired(
    database: Any, broker: RabbitBroker, probe: BrokerProbe
) -> None:
    clock = MovableClock()
    now = clock.now()
    spread = [message_timer(i, now - timedelta(seconds=60) + timedelta(milliseconds=10 * i)) for i in range(400)]
    same = [message_timer(i, now - timedelta(seconds=90), label="tie") for i in range(120)]
    await database.timers.insert_many(spread + same)
    timers = loop(database, broker, "scheduler-a", clock, batch_size=50)

    fired = 0
    for _ in range(100):
        fired += await timers.fire_due()
        if fired == 520 and timers._cursor is None:
            break
    assert fired == 520
    ids = await drain(probe)
    assert sorted(ids) == sorted([f"t-{i}" for i in range(400)] + [f"tie-{i}" for i in range(120)])
    # Earliest first: the 120 sharing the oldest due time, then the rest in due order.
    assert {i.split("-")[0] for i in ids[:120]} == {"tie"}
    assert [int(i.split("-")[1]) for i in ids[120:]] == list(range(400))
    assert await database.timers.count_documents({"claims": {"$ne": 1}}) == 0


async def test_the_loop_sleeps_until_the_next_due_time_rather_than_a_whole_poll(
    database: Any, broker: RabbitBroker, probe: BrokerProbe
) -> None:
    clock = MovableClock()
    timers = loop(database, broker, "scheduler-a", clock, poll_seconds=2.0)
    running = asyncio.create_task(timers.run())
    try:
        await asyncio.sleep(0.3)  # the first poll found nothing: the loop sleeps for up to 2 s
        due = clock.now() + timedelta(seconds=0.5)
        await database.timers.insert_one(message_timer(1, due))
        timers.wake()  # as a writer of a timer due soon would
        queue = await probe.channel.declare_queue(QUEUE, passive=True)
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            await asyncio.sleep(0.005)
        arrived = datetime.now(UTC)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert message is not None and message.message_id == "t-1"
    late = (arrived - due).total_seconds()
    assert -0.01 < late < 0.4, late  # a 2 s poll would have been up to 2 s late


async def test_a_timer_reported_as_stored_fires_when_due_although_the_next_poll_is_far_off(
    database: Any, broker: RabbitBroker, probe: BrokerProbe
) -> None:
    """A writer reports each timer it committed (`timer_stored`): one due before the loop's next poll is claimed at
    its due time, neither at once nor at the poll; one reported while a claim runs is not lost either."""
    clock = MovableClock()
    timers = loop(database, broker, "scheduler-a", clock, poll_seconds=30.0)
    running = asyncio.create_task(timers.run())
    queue = await probe.channel.declare_queue(QUEUE, passive=True)

    async def fired(count: int) -> tuple[set[str], datetime]:
        ids: set[str] = set()
        deadline = time.monotonic() + 5
        while len(ids) < count and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.005)
            elif message.message_id is not None:
                ids.add(message.message_id)
        return ids, datetime.now(UTC)

    try:
        await asyncio.sleep(0.3)  # the first poll found nothing: the loop sleeps for 30 s
        due = clock.now() + timedelta(seconds=0.4)
        await database.timers.insert_one(message_timer(1, due))
        timers.timer_stored(due)
        ids, arrived = await fired(1)
        assert ids == {"t-1"}
        assert -0.01 < (arrived - due).total_seconds() < 0.3

        # Another report lands while the claim this wake starts may be reading (before or after the second
        # timer's commit): either that claim takes it, or the loop claims again right after it.
        await database.timers.insert_one(message_timer(2, clock.now()))
        timers.wake()
        await asyncio.sleep(0)
        due = clock.now()
        await database.timers.insert_one(message_timer(3, due))
        timers.timer_stored(due)
        ids, arrived = await fired(2)
        assert ids == {"t-2", "t-3"}
        assert (arrived - due).total_seconds() < 0.5
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
