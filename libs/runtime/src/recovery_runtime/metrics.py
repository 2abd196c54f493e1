"""Prometheus series shared by every service; service-specific series live with their service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

log = structlog.get_logger(__name__)

MESSAGES_PUBLISHED = Counter(
    "recovery_messages_published_total", "Messages published with a broker confirm", ["message_type"]
)
MESSAGES_CONSUMED = Counter(
    "recovery_messages_consumed_total",
    "Messages handled, by queue and result (applied, duplicate, rejected, failed, retry_later)",
    ["queue", "result"],
)
MESSAGES_HELD = Counter(
    "recovery_messages_held_total",
    "Handler runs repeated in place (the message held, not requeued) because the database was unreachable",
    ["queue"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "recovery_messages_dead_lettered_total", "Messages sent to a dead-letter queue with a reason", ["queue"]
)
HANDLER_SECONDS = Histogram("recovery_handler_seconds", "Time to apply one message", ["queue"])
OUTBOX_RELAYED = Counter(
    "recovery_outbox_relayed_total", "Outbox messages published by the relay after a delay (crash recovery)"
)
OUTBOX_UNREADABLE = Gauge(
    "recovery_outbox_unreadable",
    "Outbox records of a message type this release does not know (a newer release's, rolled back), older than the "
    "relay's delay: left in place for that release, not relayed",
    ["outbox"],
)
DEAD_LETTER_DEPTH = Gauge(
    "recovery_dead_letter_depth",
    "Messages waiting in a dead-letter queue of this service (ready ones, read by a passive declare)",
    ["queue"],
)


class DeadLetterDepthProbe:
    """A background loop that sets DEAD_LETTER_DEPTH for each of a service's dead-letter queues.

    A passive declare answers the queue's ready count without creating or changing anything; it runs on a
    channel of its own, because a passive declare of a missing queue closes the channel it ran on.
    """

    def __init__(self, broker: Any, dead_letter_queues: Iterable[str], interval_seconds: float = 15.0) -> None:
        self._broker = broker
        self._queues = sorted(set(dead_letter_queues))
        self._interval = interval_seconds

    async def read_once(self) -> dict[str, int]:
        connection = getattr(self._broker, "_connection", None)
        if connection is None:
            return {}
        depths: dict[str, int] = {}
        channel = await connection.channel(publisher_confirms=False)
        try:
            for name in self._queues:
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = int(queue.declaration_result.message_count or 0)
                DEAD_LETTER_DEPTH.labels(name).set(depths[name])
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return depths

    async def run(self) -> None:
        while True:
            try:
                await self.read_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("dead_letter_depth.unreadable", error=str(error))
            await asyncio.sleep(self._interval)
