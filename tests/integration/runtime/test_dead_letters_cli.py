"""`recovery dead-letters`: list, show and replay against the real broker; a replay is safe to run twice."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest

from recovery_cli.main import main
from recovery_contracts.envelope import Envelope
from recovery_runtime.bus import MessageRejected
from recovery_runtime.topology import QUEUES, ConsumerQueue
from support.broker import broker_probe, eventually
from support.payments import stripe_account
from support.stack import Isolation

QUEUE = "executor.connector-account-updated"


async def cli(*argv: str) -> int:
    # The CLI runs its own event loop: keep it off this test's loop.
    return await asyncio.to_thread(main, ["dead-letters", *argv])


async def test_a_rejected_message_is_listed_shown_and_replayed_once(
    runtime_service: Any, isolation: Isolation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", isolation.rabbitmq_url)
    refuse = True
    applied: list[str] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        if refuse:
            raise MessageRejected("connector account is disabled")
        applied.append(envelope.message_id)

    message = stripe_account()
    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        await probe.publish(message)
        dlq = QUEUES[QUEUE].dead_letter_queue
        await eventually(lambda: probe.depth(dlq))

        assert await cli("list", "--queue", QUEUE) == 0
        listed = capsys.readouterr().out
        assert message.message_id in listed and "connector account is disabled" in listed

        # Listing removes nothing: the CLI reads without acknowledging and the broker requeues on close
        # (asynchronously on a quorum queue, hence the wait; a removed message would never come back).
        async def depth_is_one() -> bool:
            return await probe.depth(dlq) == 1

        await eventually(depth_is_one, timeout=10.0)

        assert await cli("show", "1", "--queue", QUEUE) == 0
        assert '"connector_account_id": "mca_payment"' in capsys.readouterr().out

        refuse = False  # the cause is fixed
        assert await cli("replay", message.message_id) == 0
        await eventually(lambda: applied == [message.message_id])
        assert await probe.depth(dlq) == 0

        assert await cli("replay", message.message_id) == 0  # twice: nothing left to replay
        assert "nothing matched" in capsys.readouterr().out
        await asyncio.sleep(0.5)
        assert applied == [message.message_id]


async def test_a_replay_that_would_reach_no_queue_leaves_the_message_in_the_dead_letter_queue(
    runtime_service: Any, isolation: Isolation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", isolation.rabbitmq_url)

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        raise MessageRejected("connector account is disabled")

    message = stripe_account()
    consumer = QUEUES[QUEUE]
    async with runtime_service({QUEUE: handler}), broker_probe(isolation.rabbitmq_url) as probe:
        await probe.publish(message)
        await eventually(lambda: probe.depth(consumer.dead_letter_queue))
        # The queue's binding gone (a release that renamed it, a deploy step not run yet): the broker returns the
        # replayed message as unroutable, and confirms it all the same.
        async with await aio_pika.connect(isolation.rabbitmq_url) as connection:
            channel = await connection.channel()
            queue = await channel.get_queue(consumer.name, ensure=False)
            await queue.unbind(consumer.exchange.name, consumer.routing_key)

        assert await cli("replay", message.message_id) != 0
        assert "NOT replayed" in capsys.readouterr().out

        async def still_dead_lettered() -> bool:
            return await probe.depth(consumer.dead_letter_queue) == 1

        await eventually(still_dead_lettered, timeout=10.0)


async def test_replay_needs_a_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("replay") == 2
    assert "say what to replay" in capsys.readouterr().out
