"""Finding consumers a broker restart left behind, and re-creating them (faststream#2758).

After a broker restart aio-pika's robust reconnect does not always restore a FastStream subscriber's consumer,
and a service holding no consumer idles forever. Telling so needs FastStream's and aio-pika's private attributes
(the subscriber's queue object and consumer tag, the channel manager's cache): they are read here and nowhere
else, each guarded, so that a FastStream upgrade degrades to "restart fails and is retried", never to a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from faststream.rabbit import RabbitBroker


async def restart_subscriber(broker: RabbitBroker, subscriber: Any, grace_seconds: float) -> None:
    """Stop what is left of `subscriber`'s consumer and consume anew on a fresh channel."""
    queue = getattr(subscriber, "_queue_obj", None)
    tag = getattr(subscriber, "_consumer_tag", None)
    if queue is not None and tag is not None and queue.channel.is_closed:
        # FastStream's stop cannot cancel on a closed channel, but aio-pika's robust queue keeps the consumer
        # in its restore list and re-creates it when the connection comes back: a consumer nobody owns any
        # more, whose deliveries FastStream drops unacknowledged while the subscriber restarts (they would
        # sit unacknowledged until the connection closes). Forget it; the subscriber consumes anew below.
        restorable = getattr(queue, "_consumers", None)
        if isinstance(restorable, dict):
            restorable.pop(tag, None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(subscriber.stop(), grace_seconds + 5.0)
    if queue is None or queue.channel.is_closed:
        _forget_dead_channels(broker)
    await asyncio.wait_for(subscriber.start(), 15.0)


def queue_name(subscriber: Any) -> str:
    queue = getattr(subscriber, "queue", None)
    return str(getattr(queue, "name", "?"))


def consumer_problem(subscriber: Any) -> str | None:
    """Why this subscriber holds no live consumer, or None when it does (no I/O: cheap enough for /readyz)."""
    queue = getattr(subscriber, "_queue_obj", None)
    tag = getattr(subscriber, "_consumer_tag", None)
    if queue is None or tag is None:
        return "not consuming"
    if queue.channel.is_closed:
        return "its channel is closed"
    # aio-pika's channel wraps aiormq's, which drops a consumer when the broker cancels it (basic.cancel).
    underlay = getattr(getattr(queue.channel, "_channel", None), "channel", None)
    if underlay is None or underlay.is_closed:
        return "its channel is closed"
    consumers = getattr(underlay, "consumers", None)
    if isinstance(consumers, dict) and tag not in consumers:
        return "the broker cancelled its consumer"
    return None


def _forget_dead_channels(broker: RabbitBroker) -> None:
    """FastStream caches channels and the queues declared on them; drop those whose channel is closed so the
    next start opens a fresh channel instead of consuming on a dead one. (Private attributes of FastStream
    0.7: guarded, so a FastStream upgrade degrades to "restart fails and is retried", never to a crash.)"""
    config = getattr(broker, "config", None)
    manager = getattr(config, "channel_manager", None)
    channels: dict[Any, Any] = getattr(manager, "_ChannelManagerImpl__channels", {})
    for key, channel in list(channels.items()):
        if channel.is_closed:
            channels.pop(key, None)
    declared: dict[Any, Any] = getattr(getattr(config, "declarer", None), "_queues", {})
    for key, queue in list(declared.items()):
        if queue.channel.is_closed:
            declared.pop(key, None)
