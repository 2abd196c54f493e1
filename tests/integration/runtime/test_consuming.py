"""Consuming against the real broker: duplicates apply once, poison ends in its DLQ with a reason, never loops."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY

from recovery_contracts.envelope import Envelope
from recovery_runtime import consumer
from recovery_runtime.bus import REJECTION_HEADER, MessageRejected, OutgoingMessage, RetryLater
from recovery_runtime.topology import DELIVERY_LIMIT, QUEUES, ConsumerQueue
from recovery_runtime.unit_of_work import Transaction
from support.broker import broker_probe, eventually
from support.payments import recovery_payment, scheduled, stripe_account
from support.stack import Isolation

QUEUE = "executor.connector-account-updated"


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_message_published_twice_is_applied_once(runtime_service: Any, isolation: Isolation) -> None:
    applied: list[str] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        async def effect(tx: Transaction) -> None:
            account = envelope.payload.connector_account_id
            await service.db["effects"].update_one(
                {"_id": account}, {"$inc": {"applied": 1}}, upsert=True, session=tx.session
            )

        await service.unit_of_work.apply(effect, consumed=envelope, consumer=queue.name)
        applied.append(envelope.message_id)

    before = counted("recovery_messages_consumed_total", queue=QUEUE, result="duplicate")
    async with runtime_service({QUEUE: handler}, duplicate_deliveries_for_tests=True) as service:
        messages = [stripe_account(f"mca_{n}") for n in range(5)]
        await service.publisher.publish_many([OutgoingMessage.of(m) for m in messages])
        await eventually(
            lambda: counted("recovery_messages_consumed_total", queue=QUEUE, result="duplicate") - before >= 5
        )
        effects = await service.db["effects"].find().to_list(None)
    assert sorted(applied) == sorted(m.message_id for m in messages)
    assert [e["applied"] for e in effects] == [1] * 5


async def test_invalid_bytes_end_in_the_dead_letter_queue_with_the_reason_and_consuming_goes_on(
    runtime_service: Any, isolation: Isolation
) -> None:
    handled: list[str] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        handled.append(envelope.message_id)

    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        poison = aio_pika.Message(b'{"not": "an envelope"', message_id="poison-1", content_type="application/json")
        await probe.channel.default_exchange.publish(poison, routing_key=QUEUE)
        good = stripe_account()
        await probe.publish(good)
        await eventually(lambda: handled == [good.message_id])
        dead = await probe.take(QUEUES[QUEUE].dead_letter_queue)
    assert dead.message_id == "poison-1"
    reason = dead.headers[REJECTION_HEADER]
    assert isinstance(reason, str) and reason.startswith("invalid message")
    assert dead.headers["x-original-queue"] == QUEUE


async def test_a_message_from_a_newer_release_is_applied_its_added_field_ignored(
    runtime_service: Any, isolation: Isolation
) -> None:
    # A rolling upgrade: the producer already sends a field this consumer's contract does not have yet.
    handled: list[Envelope[Any]] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        handled.append(envelope)

    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        sent = stripe_account()
        body = sent.model_dump(mode="json")
        body["payload"]["added_in_a_later_release"] = {"rate": 5}
        newer = aio_pika.Message(json.dumps(body).encode(), message_id=sent.message_id, content_type="application/json")
        await probe.channel.default_exchange.publish(newer, routing_key=QUEUE)
        await eventually(lambda: len(handled) == 1)
        assert await probe.depth(QUEUES[QUEUE].dead_letter_queue) == 0
    assert handled == [sent]


async def test_a_message_that_always_fails_is_dead_lettered_with_its_error_at_the_delivery_limit_not_looped(
    runtime_service: Any, isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "requeue_pause", lambda error, deliveries: 0.0)
    tries: list[int] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        tries.append(1)
        raise RuntimeError("the database is down, say")

    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        message = stripe_account()
        await probe.publish(message)
        dead = await probe.take(QUEUES[QUEUE].dead_letter_queue, timeout=60)
        await asyncio.sleep(0.5)
        assert await probe.depth(QUEUE) == 0
    assert dead.message_id == message.message_id
    # Dead-lettered by the pipeline on the last delivery the queue allows, saying what kept failing (RabbitMQ's
    # own dead-lettering at the limit would say only `delivery_limit`), with the routing for a replay.
    assert dead.headers[REJECTION_HEADER] == (
        f"failed on each of {DELIVERY_LIMIT + 1} deliveries (the queue's limit); "
        "the last: RuntimeError: the database is down, say"
    )
    assert dead.headers["x-original-queue"] == QUEUE and "x-death" not in dead.headers
    # The first delivery plus DELIVERY_LIMIT redeliveries, then never again.
    assert len(tries) == DELIVERY_LIMIT + 1


async def test_a_message_that_waits_on_every_delivery_is_dead_lettered_with_what_it_waited_for(
    runtime_service: Any, isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "requeue_pause", lambda error, deliveries: 0.0)

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        raise RetryLater("invoice inv_1 is not known yet")

    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        await probe.publish(stripe_account())
        dead = await probe.take(QUEUES[QUEUE].dead_letter_queue, timeout=60)
    assert dead.headers[REJECTION_HEADER] == (
        f"waited on each of {DELIVERY_LIMIT + 1} deliveries (the queue's limit); "
        "the last: RetryLater: invoice inv_1 is not known yet"
    )


async def test_a_rejected_message_is_dead_lettered_once_with_its_message_id(
    runtime_service: Any, isolation: Isolation
) -> None:
    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        raise MessageRejected("connector account refers to nothing")

    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        message = stripe_account()
        await probe.publish(message)
        dead = await probe.take(QUEUES[QUEUE].dead_letter_queue)
        await asyncio.sleep(0.3)
        assert await probe.depth(QUEUES[QUEUE].dead_letter_queue) == 0
    assert dead.message_id == message.message_id
    assert dead.headers[REJECTION_HEADER] == "connector account refers to nothing"
    assert dead.headers["x-original-routing-key"] == message.type.value


async def test_messages_of_one_queue_are_handled_side_by_side_up_to_the_prefetch(
    runtime_service: Any, isolation: Isolation
) -> None:
    """aiormq starts a task per delivery, so a handler waiting on the database or a connector does not hold back
    the next message of its queue (the prefetch bounds how many): three handlers that wait for each other all
    finish. Were a queue consumed one message at a time, the first would wait for ever."""
    inside: list[str] = []
    all_in = asyncio.Event()

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        inside.append(envelope.message_id)
        if len(inside) == 3:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10.0)

    before = counted("recovery_messages_consumed_total", queue=QUEUE, result="applied")
    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        messages = [stripe_account(f"mca_{n}") for n in range(3)]
        for message in messages:
            await probe.publish(message)
        await eventually(
            lambda: counted("recovery_messages_consumed_total", queue=QUEUE, result="applied") - before >= 3
        )
    assert sorted(inside) == sorted(m.message_id for m in messages)


async def test_a_message_no_queue_is_bound_for_stays_in_the_outbox_and_the_others_go_out(
    runtime_service: Any, isolation: Isolation
) -> None:
    """The broker returns a mandatory publish no queue is bound for (a deploy step that has not bound another
    service's queue yet): the publish fails and the message waits in the outbox for the relay, while the messages
    committed with it go out; once bound, the relay publishes it. Before, the return was confirmed and the
    message lost."""
    unbound = QUEUES[QUEUE]  # the one queue connector-account.updated goes to
    scheduled_queue = QUEUES["scheduler.recovery-scheduled"]
    async with (
        runtime_service({}, outbox_relay_after_seconds=1.0) as service,
        broker_probe(isolation.rabbitmq_url) as probe,
    ):
        async with await aio_pika.connect(isolation.rabbitmq_url) as connection:
            channel = await connection.channel()
            queue = await channel.get_queue(unbound.name, ensure=False)
            await queue.unbind(unbound.exchange.name, unbound.routing_key)
        routed, lost = scheduled(recovery_payment()), stripe_account("mca_unbound")

        async def commit(tx: Transaction) -> None:
            tx.emit(routed)
            tx.emit(lost)

        await service.unit_of_work.apply(commit)
        assert (await probe.take_json(scheduled_queue.name))["message_id"] == routed.message_id
        assert await service.db[f"outbox_{service.name}"].count_documents({"_id": lost.message_id}) == 1
        assert await probe.depth(unbound.name) == 0

        async with await aio_pika.connect(isolation.rabbitmq_url) as connection:
            channel = await connection.channel()
            queue = await channel.get_queue(unbound.name, ensure=False)
            await queue.bind(unbound.exchange.name, unbound.routing_key)
        relayed = await probe.take_json(unbound.name, timeout=20.0)
        assert relayed["message_id"] == lost.message_id
