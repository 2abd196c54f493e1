"""Dead letters: list, inspect and replay what the consumers' dead-letter queues hold.

Reading never loses a message: messages are taken with basic.get and left unacknowledged, and closing the
channel hands back every one not explicitly removed. A replay publishes the original body with its original
`message_id` to its original exchange and routing key, waits for the broker's confirm, and only then removes
the message from the dead-letter queue. A replay interrupted between the two leaves the message in the queue;
running it again publishes the same message id once more, which the consumers de-duplicate (their inbox).

A deployment without an optional service (UNDEPLOYED_SERVICES, read from the environment as every service reads
it) has none of that service's queues: they are left out here too, as topology leaves them out of what it declares.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from recovery_runtime.bus import (
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REJECTION_HEADER,
)
from recovery_runtime.settings import undeployed_services
from recovery_runtime.topology import QUEUES, deployed_queues

# Headers that describe a dead-lettering, dropped from a replayed message (it starts afresh).
_DEATH_HEADERS = (
    REJECTION_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)
REPLAYED_HEADER = "x-replayed-from"
# Safety bound for one command: a listing or replay reads at most this many messages per queue.
DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, at `position` (1-based, in queue order at the time of reading)."""

    dead_letter_queue: str
    position: int
    message_id: str | None
    reason: str
    original_queue: str
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_type: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    timestamp: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.dead_letter_queue,
            "position": self.position,
            "message_id": self.message_id,
            "type": self.message_type,
            "payment_id": self.correlation_id,
            "reason": self.reason,
            "replays_to": f"{self.exchange or '(default exchange)'} / {self.routing_key}",
        }

    def detail(self) -> dict[str, Any]:
        try:
            body: Any = json.loads(self.body)
        except ValueError:
            body = self.body.decode("utf-8", "replace")
        return {**self.summary(), "headers": _plain(self.headers), "body": body}


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on; all given criteria must match (none given: every one)."""

    queues: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    positions: tuple[int, ...] = ()
    reason_contains: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.message_ids and letter.message_id not in self.message_ids:
            return False
        if self.positions and letter.position not in self.positions:
            return False
        return not (self.reason_contains and self.reason_contains.lower() not in letter.reason.lower())


@dataclass
class ReplayReport:
    replayed: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)


def dead_letter_queues(queues: Iterable[str] = (), absent: Iterable[str] = ()) -> list[str]:
    """`<queue>.dlq` for the given consumer queues (or DLQ names), or for every consumer queue but those of the
    `absent` services (UNDEPLOYED_SERVICES), which are not declared: naming one of those is refused, as is naming
    a queue that is not ours."""
    left_out = frozenset(absent)
    names = list(queues) or [q.name for q in deployed_queues(left_out)]
    unknown = [n for n in names if n.removesuffix(".dlq") not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    undeployed = [n for n in names if QUEUES[n.removesuffix(".dlq")].service in left_out]
    if undeployed:
        raise ValueError(
            f"queue(s) {', '.join(undeployed)} of a service this deployment leaves out "
            f"(UNDEPLOYED_SERVICES={','.join(sorted(left_out))}): not declared, nothing to read"
        )
    return [f"{n.removesuffix('.dlq')}.dlq" for n in names]


def describe(message: AbstractIncomingMessage, dead_letter_queue: str, position: int) -> DeadLetter:
    """Where a dead letter came from, whoever dead-lettered it: a consumer (our headers) or RabbitMQ (x-death)."""
    headers = dict(message.headers or {})
    queue_name = dead_letter_queue.removesuffix(".dlq")
    death = _first_death(headers)
    if REJECTION_HEADER in headers:
        reason = _text(headers[REJECTION_HEADER])
    elif death is not None:
        reason = f"dead-lettered by RabbitMQ: {_text(death.get('reason'))} (count {death.get('count')})"
    else:
        reason = "unknown (no x-rejection-reason or x-death header)"
    consumer_queue = QUEUES.get(queue_name)
    if ORIGINAL_EXCHANGE_HEADER in headers and ORIGINAL_ROUTING_KEY_HEADER in headers:
        exchange = _text(headers[ORIGINAL_EXCHANGE_HEADER])
        routing_key = _text(headers[ORIGINAL_ROUTING_KEY_HEADER])
    elif death is not None and death.get("routing-keys"):
        exchange = _text(death.get("exchange"))
        routing_key = _text(next(iter(death["routing-keys"])))
    elif consumer_queue is not None:
        exchange, routing_key = consumer_queue.exchange.name, consumer_queue.routing_key
    else:
        exchange, routing_key = "", queue_name
    return DeadLetter(
        dead_letter_queue=dead_letter_queue,
        position=position,
        message_id=message.message_id,
        reason=reason,
        original_queue=_text(headers.get(ORIGINAL_QUEUE_HEADER, queue_name)),
        exchange=exchange,
        routing_key=routing_key,
        body=bytes(message.body),
        headers=headers,
        message_type=message.type,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        timestamp=message.timestamp,
    )


class DeadLetters:
    """Operations on the dead-letter queues of the broker at `url` (RABBITMQ_URL), but those of the `absent`
    services (default: UNDEPLOYED_SERVICES in the environment, read when first needed)."""

    def __init__(self, url: str, limit: int = DEFAULT_LIMIT, absent: Iterable[str] | None = None) -> None:
        self.url = url
        self.limit = limit
        self._absent = None if absent is None else frozenset(absent)

    @property
    def absent(self) -> frozenset[str]:
        if self._absent is None:
            self._absent = undeployed_services()
        return self._absent

    async def counts(self, queues: Iterable[str] = ()) -> dict[str, int]:
        names = dead_letter_queues(queues, self.absent)
        async with self._channel() as channel:
            counts = {}
            for name in names:
                declared = await channel.declare_queue(name, passive=True)
                counts[name] = int(declared.declaration_result.message_count or 0)
            return counts

    async def list(self, selection: Selection = Selection()) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        async with self._reading(selection) as letters:
            found = [letter for letter, _ in letters]
        return found

    async def replay(self, selection: Selection, say: Callable[[str], None] = lambda _: None) -> ReplayReport:
        report = ReplayReport()
        async with await aio_pika.connect(self.url) as connection:
            # on_return_raises: a message the broker returns (it would reach no queue) fails its publish; without
            # it aio-pika confirms the returned message and the replay would take it off the dead-letter queue.
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            async with self._reading(selection, connection) as letters:
                for letter, message in letters:
                    try:
                        await self._publish(publisher, letter)
                    except Exception as error:  # left in the dead-letter queue: nothing lost, try again later
                        report.failed.append((letter, f"{type(error).__name__}: {error}"))
                        say(f"NOT replayed {letter.dead_letter_queue} #{letter.position}: {error}")
                        continue
                    # Only now, with the broker's confirm in hand, does the message leave the dead-letter queue.
                    await message.ack()
                    report.replayed.append(letter)
                    say(
                        f"replayed {letter.dead_letter_queue} #{letter.position} message {letter.message_id} "
                        f"-> {letter.exchange or '(default exchange)'} / {letter.routing_key}"
                    )
        return report

    async def _publish(self, channel: AbstractChannel, letter: DeadLetter) -> None:
        headers = {k: v for k, v in letter.headers.items() if k not in _DEATH_HEADERS}
        headers[REPLAYED_HEADER] = letter.dead_letter_queue
        message = aio_pika.Message(
            letter.body,
            headers=headers,
            message_id=letter.message_id,
            correlation_id=letter.correlation_id,
            type=letter.message_type,
            content_type=letter.content_type or "application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC),
        )
        exchange = (
            channel.default_exchange
            if not letter.exchange
            else await channel.get_exchange(letter.exchange, ensure=False)
        )
        # mandatory: a message that would reach no queue fails the replay instead of vanishing.
        await exchange.publish(message, routing_key=letter.routing_key, mandatory=True, timeout=30)

    @asynccontextmanager
    async def _channel(self) -> AsyncIterator[AbstractChannel]:
        async with await aio_pika.connect(self.url) as connection:
            yield await connection.channel()

    @asynccontextmanager
    async def _reading(
        self, selection: Selection, connection: aio_pika.abc.AbstractConnection | None = None
    ) -> AsyncIterator[builtins.list[tuple[DeadLetter, AbstractIncomingMessage]]]:
        """The selected dead letters, held unacknowledged; every one not acked returns to its queue at the end."""
        names = dead_letter_queues(selection.queues, self.absent)
        owned = connection is None
        if connection is None:
            connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            # Without a prefetch limit basic.get is unaffected; the limit only bounds what the broker pushes.
            selected: builtins.list[tuple[DeadLetter, AbstractIncomingMessage]] = []
            for name in names:
                queue = await channel.declare_queue(name, passive=True)
                for position in range(1, self.limit + 1):
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    letter = describe(message, name, position)
                    if selection.matches(letter):
                        selected.append((letter, message))
            try:
                yield selected
            finally:
                # Closing the channel requeues whatever was read and not removed, in its original order.
                await channel.close()
        finally:
            if owned:
                await connection.close()


def _first_death(headers: dict[str, Any]) -> dict[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return {str(k): v for k, v in deaths[0].items()}
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
