"""A deployment without the read side (UNDEPLOYED_SERVICES=analytics): no service declares analytics' queues, so
the events nobody will consume are not kept, and everything the pipeline consumes still is."""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity
from pydantic import ValidationError

from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.topology import QUEUES, queues_of
from support.broker import broker_probe, eventually
from support.payments import payment_succeeded, recovery_payment
from support.services import settings_for
from support.stack import Isolation


async def existing(url: str, names: list[str]) -> set[str]:
    """Which of these queues exist on the broker (a passive declare each, on a channel of its own)."""
    found = set()
    connection = await aio_pika.connect(url)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                found.add(name)
            except ChannelNotFoundEntity:
                pass
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return found


async def test_without_analytics_its_queues_are_not_declared_and_events_reach_the_pipeline_only(
    runtime_service: Any, isolation: Isolation
) -> None:
    analytics = [q.name for q in queues_of("analytics")] + [q.dead_letter_queue for q in queues_of("analytics")]
    pipeline = [q.name for q in QUEUES.values() if q.service != "analytics"]
    async with runtime_service({}, undeployed_services="analytics"):
        assert await existing(isolation.rabbitmq_url, analytics) == set()
        assert await existing(isolation.rabbitmq_url, pipeline) == set(pipeline)
        async with broker_probe(isolation.rabbitmq_url) as broker:
            await broker.publish(payment_succeeded(recovery_payment()))
            for queue in ("scheduler.payment-succeeded", "dispatcher.payment-succeeded", "intake.payment-succeeded"):
                await eventually(lambda queue=queue: broker.depth(queue))
    assert await existing(isolation.rabbitmq_url, analytics) == set()


async def test_by_default_every_queue_is_declared_analytics_too(runtime_service: Any, isolation: Isolation) -> None:
    names = [q.name for q in QUEUES.values()]
    async with runtime_service({}):
        assert await existing(isolation.rabbitmq_url, names) == set(names)


def test_only_the_read_side_may_be_left_out_and_not_by_itself(isolation: Isolation) -> None:
    with pytest.raises(ValidationError, match="only analytics may be left out"):
        settings_for(ServiceSettings, isolation, undeployed_services="analytics, executor")
    settings = settings_for(ServiceSettings, isolation, undeployed_services=" analytics ")
    assert settings.absent_services == frozenset({"analytics"})
    with pytest.raises(ValueError, match="names analytics, the service being started"):
        Service("analytics", settings)
