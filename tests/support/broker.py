"""Looking at the broker from a test: publish raw or enveloped messages, read queues, wait for messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from recovery_contracts.envelope import Envelope
from recovery_runtime.topology import exchange_for


class BrokerProbe:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.publish_raw(
            envelope.model_dump_json().encode(),
            exchange_for(envelope.type).name,
            envelope.type.value,
            message_id=envelope.message_id,
        )

    async def publish_to_queue(self, queue: str, envelope: Envelope[Any]) -> None:
        """`envelope` to `queue` alone (through the default exchange), not to every queue bound to its type."""
        message = aio_pika.Message(
            envelope.model_dump_json().encode(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.message_id,
            content_type="application/json",
        )
        await self.channel.default_exchange.publish(message, routing_key=queue)

    async def publish_raw(self, body: bytes, exchange: str, routing_key: str, message_id: str | None = None) -> None:
        target = await self.channel.get_exchange(exchange, ensure=True)
        await target.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                content_type="application/json",
            ),
            routing_key=routing_key,
        )

    async def depth(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count is not None
        return declared.declaration_result.message_count

    async def take(self, queue: str, timeout: float = 20.0) -> AbstractIncomingMessage:
        """The next message on `queue` (acknowledged), waiting up to `timeout` seconds."""
        declared = await self.channel.declare_queue(queue, passive=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            message = await declared.get(no_ack=True, fail=False)
            if message is not None:
                return message
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no message on {queue} within {timeout} s")
            await asyncio.sleep(0.05)

    async def take_json(self, queue: str, timeout: float = 20.0) -> dict[str, Any]:
        return json.loads((await self.take(queue, timeout)).body)


@asynccontextmanager
async def broker_probe(url: str) -> AsyncIterator[BrokerProbe]:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        yield BrokerProbe(channel)
    finally:
        await connection.close()


async def eventually(check: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Await `check()` until it returns something truthy; fail with its last value after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def operational_events(url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of the test's own bound to the dispatcher's operational events."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    exchange = await channel.get_exchange("recovery.events", ensure=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "webhook.#")
    try:
        yield queue
    finally:
        await connection.close()
