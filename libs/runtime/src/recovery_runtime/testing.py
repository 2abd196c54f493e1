"""In-memory stand-ins for unit tests of handlers: a unit of work, a publisher that records, a clock to set.

A service built with these (`build_service(settings, adapters=...)`, passing them on to `Service`) runs its real
consumer pipeline under FastStream's `TestRabbitBroker`: no broker, no database, milliseconds per message.
Integration tests use the real ones; nothing in production imports this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from faststream.rabbit import RabbitBroker
from prometheus_client import REGISTRY

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import envelope_model
from recovery_runtime.bus import AlreadyApplied, OutgoingMessage, Publisher
from recovery_runtime.payment_fence import FenceDecision, FenceVerdict, PaymentFence, RuledPaymentFences
from recovery_runtime.topology import QUEUES, ConsumerQueue
from recovery_runtime.tracing import Tracing
from recovery_runtime.unit_of_work import Transaction, applied_key

T = TypeVar("T")


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    reason: str
    body: bytes


class RecordingPublisher(Publisher):
    """Keeps what would have gone to the broker: published messages and dead letters with their reasons."""

    def __init__(self) -> None:  # no broker: nothing leaves the process
        self.published: list[OutgoingMessage] = []
        self.dead_letters: list[DeadLetter] = []

    async def publish(self, message: OutgoingMessage) -> None:
        self.published.append(message)

    async def publish_many(self, messages: Any) -> None:
        for message in messages:
            await self.publish(message)

    async def dead_letter(
        self, queue: ConsumerQueue, body: bytes, reason: str, headers: dict[str, Any], message_id: str | None = None
    ) -> None:
        self.dead_letters.append(DeadLetter(queue.name, reason, body))

    def envelopes(self, message_type: MessageType) -> list[Envelope[Any]]:
        """The published messages of one type, decoded with their type's model, in publishing order."""
        model = envelope_model(message_type)
        return [model.model_validate_json(m.body) for m in self.published if m.message_type is message_type]


class InMemoryUnitOfWork:
    """`UnitOfWork` without MongoDB: an in-memory inbox, and committed messages published through `publisher`.

    In-memory repositories write as they are called, so a `work` that raises half-way is not rolled back here:
    unit tests that need atomicity belong in the integration suite, against the real transaction."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.inbox: set[str] = set()
        self.transactions = 0  # `apply` calls: what a MongoDB transaction would be
        self.single_writes = 0  # `write` calls: one document, no transaction

    async def apply(
        self,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
        inbox: bool = True,
    ) -> T:
        key = applied_key(consumed, str(consumer)) if consumed is not None and inbox else None
        if key is not None and key in self.inbox:
            raise AlreadyApplied(key)
        self.transactions += 1
        tx = Transaction.one_document()
        result = await work(tx)
        if key is not None:
            self.inbox.add(key)
        await self._committed(tx)
        return result

    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        self.single_writes += 1
        tx = Transaction.one_document()
        result = await work(tx)
        tx.require_embedded()
        await self._committed(tx)
        return result

    async def remove_published(self) -> None:
        return None

    async def _committed(self, tx: Transaction) -> None:
        for callback in tx.on_commit:
            callback()
        await self.publisher.publish_many(tx.outgoing)


class InMemoryPaymentFences(RuledPaymentFences):
    """`PaymentFences` in a dict, by the same rule; `fences` for tests to read or set."""

    def __init__(self) -> None:
        self.fences: dict[str, PaymentFence] = {}

    async def _change(self, payment_id: str, decide: FenceDecision) -> tuple[FenceVerdict, PaymentFence]:
        verdict, self.fences[payment_id] = decide(self.fences.get(payment_id, PaymentFence(payment_id)))
        return verdict, self.fences[payment_id]


@dataclass
class FixedClock:
    """A clock that stands still until a test moves it."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 15, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, by: timedelta) -> None:
        self.current += by


async def publish(broker: RabbitBroker, queue_name: str, envelope: Envelope[Any] | bytes) -> None:
    """Publish to `queue_name`'s exchange and routing key, as a producer would (use under TestRabbitBroker)."""
    queue = QUEUES[queue_name]
    body = envelope if isinstance(envelope, bytes) else envelope.model_dump_json().encode()
    message_id = None if isinstance(envelope, bytes) else envelope.message_id
    await broker.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, message_id=message_id)


class SpansInMemory:
    """Tracing on, its spans kept in memory: pass `tracing` to `Service` (nothing global is set or instrumented)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = Tracing(self.provider)

    def span(self, name: str) -> Any:
        """A span to run code in (a context manager yielding the span)."""
        return self.provider.get_tracer("recovery.tests").start_as_current_span(name)

    def finished(self, name_suffix: str) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name.endswith(name_suffix)]

    @staticmethod
    def traceparent(context: Any) -> dict[str, str]:
        """The W3C headers a message emitted in the span of `context` stores."""
        return {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"}


def consumed(queue_name: str, result: str) -> float:
    """How many messages the pipeline ended on `queue_name` with `result` (applied, duplicate, rejected, failed) in
    this process so far: compare before and after a step."""
    labels = {"queue": queue_name, "result": result}
    return REGISTRY.get_sample_value("recovery_messages_consumed_total", labels) or 0.0
