"""A service whose consumer is gone (channel closed, as after a broker restart) is not ready, and re-creates it."""

from __future__ import annotations

from typing import Any

from recovery_contracts.envelope import Envelope
from recovery_runtime.topology import ConsumerQueue
from support.broker import broker_probe, eventually
from support.payments import stripe_account
from support.stack import Isolation

QUEUE = "executor.connector-account-updated"


async def test_a_lost_consumer_fails_readiness_and_is_re_created(runtime_service: Any, isolation: Isolation) -> None:
    handled: list[str] = []

    async def handler(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        handled.append(envelope.message_id)

    async with runtime_service({QUEUE: handler}) as service, broker_probe(isolation.rabbitmq_url) as probe:
        assert (await service.readiness())["consumers"]
        subscriber = service._subscribers[0]
        await subscriber._queue_obj.channel.close()
        assert service.missing_consumers(), "a closed channel must show as a missing consumer"
        assert not (await service.readiness())["consumers"]

        await eventually(service.consumers_present, timeout=15)
        message = stripe_account()
        await probe.publish(message)
        await eventually(lambda: handled == [message.message_id])
