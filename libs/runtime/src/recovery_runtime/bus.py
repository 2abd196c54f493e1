"""Publishing envelopes with confirms and dead-lettering with a reason; what a consumer does on failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pymongo.errors import ConnectionFailure, PyMongoError

from recovery_contracts.envelope import Envelope, MessageType
from recovery_runtime import metrics
from recovery_runtime.topology import DEAD_LETTER, ConsumerQueue, exchange_for
from recovery_runtime.tracing import TraceContext, continued, current_trace_context

log = structlog.get_logger(__name__)

REJECTION_HEADER = "x-rejection-reason"
# Where a message rejected by a consumer came from, so `recovery dead-letters replay` can send it back.
ORIGINAL_QUEUE_HEADER = "x-original-queue"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
OUTAGE_PAUSE_CAP_SECONDS = 5.0


class MessageRejected(Exception):
    """The message can never be applied (invalid, refers to nothing): dead-letter it with this reason."""


class AlreadyApplied(Exception):
    """The message's effect is already in the store (a redelivery or duplicate): acknowledge it."""


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    message_type: MessageType
    body: bytes
    correlation_id: str | None = None
    # The W3C trace context the message was emitted in (tracing on): its publish continues that trace, even
    # when the relay or a timer publishes it long after (recovery_runtime.tracing).
    trace_context: TraceContext | None = None

    @classmethod
    def of(cls, envelope: Envelope[Any], body: bytes | None = None) -> OutgoingMessage:
        """`envelope` to publish; `body`: its JSON as another service sent it (a timer's message), published as
        is so that a field this release does not know reaches the consumer, else the envelope's own."""
        return cls(
            message_id=envelope.message_id,
            message_type=envelope.type,
            body=body if body is not None else envelope.model_dump_json().encode(),
            correlation_id=envelope.correlation_id,
            trace_context=current_trace_context(),
        )

    def to_document(self, created_at: Any) -> dict[str, Any]:
        doc = {
            "_id": self.message_id,
            "message_type": self.message_type.value,
            "body": self.body,
            "correlation_id": self.correlation_id,
            "created_at": created_at,
        }
        if self.trace_context:
            doc["trace_context"] = self.trace_context
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> OutgoingMessage:
        return cls(
            message_id=doc["_id"],
            message_type=MessageType(doc["message_type"]),
            body=bytes(doc["body"]),
            correlation_id=doc.get("correlation_id"),
            trace_context=doc.get("trace_context"),
        )


class Publisher:
    """Persistent publishes, each awaited until the broker confirms it, and `mandatory`: on a channel that raises for
    a returned message (`on_return_raises`, the service's), a message no queue is bound for fails its publish and
    stays in the caller's outbox, rather than being confirmed and lost (a deploy step that has not bound another
    service's queue yet, with DECLARE_TOPOLOGY=false). A message type only undeployed services consume
    (`routable`: the types some deployed queue takes; None: every type) is published without `mandatory`: nobody is
    meant to read it.

    `duplicate_for_tests` (setting DUPLICATE_DELIVERIES_FOR_TESTS, the fault suite only) publishes every
    message twice with the same message id: the broker then delivers each one twice, as a redelivery would.
    """

    def __init__(
        self,
        broker: RabbitBroker,
        *,
        timeout: float = 10.0,
        duplicate_for_tests: bool = False,
        routable: frozenset[MessageType] | None = None,
    ) -> None:
        self._broker = broker
        self._timeout = timeout
        self._copies = 2 if duplicate_for_tests else 1
        self._routable = routable

    async def publish(self, message: OutgoingMessage) -> None:
        for _ in range(self._copies):
            # Bounded: with the broker away a confirm never comes; the caller's outbox keeps the message.
            with continued(message.trace_context):
                await asyncio.wait_for(
                    self._broker.publish(
                        message.body,
                        exchange=exchange_for(message.message_type),
                        routing_key=message.message_type.value,
                        persist=True,
                        mandatory=self._routable is None or message.message_type in self._routable,
                        message_id=message.message_id,
                        correlation_id=message.correlation_id,
                        message_type=message.message_type.value,
                        content_type="application/json",
                    ),
                    self._timeout,
                )
            metrics.MESSAGES_PUBLISHED.labels(message.message_type.value).inc()

    async def publish_each(self, messages: Sequence[OutgoingMessage]) -> list[Exception | None]:
        """Publish each message on its own, confirms awaited together: per message, the error its publish met (the
        broker away, no queue bound for it) or None. A cancellation is raised, not returned."""
        outcomes = await asyncio.gather(*(self.publish(m) for m in messages), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        return [o if isinstance(o, Exception) else None for o in outcomes]

    async def publish_many(self, messages: Iterable[OutgoingMessage]) -> None:
        # Confirms are awaited concurrently: one round trip's latency for the batch, not one per message.
        await asyncio.gather(*(self.publish(m) for m in messages))

    async def dead_letter(
        self, queue: ConsumerQueue, body: bytes, reason: str, headers: dict[str, Any], message_id: str | None = None
    ) -> None:
        """Into `<queue>.dlq` with the reason; the original message id and routing stay for a replay."""
        await asyncio.wait_for(
            self._broker.publish(
                body,
                exchange=DEAD_LETTER,
                routing_key=queue.name,
                persist=True,
                mandatory=True,
                message_id=message_id,
                headers={
                    **headers,
                    REJECTION_HEADER: reason[:2000],
                    ORIGINAL_QUEUE_HEADER: queue.name,
                    ORIGINAL_EXCHANGE_HEADER: queue.exchange.name,
                    ORIGINAL_ROUTING_KEY_HEADER: queue.routing_key,
                },
                content_type="application/json",
            ),
            self._timeout,
        )
        metrics.MESSAGES_DEAD_LETTERED.labels(queue.name).inc()


# The longest a consumer holds a message before handing it back. With the queues' x-delivery-limit (20), the
# growing pauses add up to 155 s before a message is dead-lettered: a lease a message waits out is at most 120 s.
MAX_RETRY_PAUSE_SECONDS = 10.0


class RetryLater(Exception):
    """The message cannot apply yet, and the handler knows until when at the latest (another holder's lease runs
    out in `after_seconds`): it is handed back after the usual growing pause, never past that moment, so that it
    comes back at once when the holder settles early and right at the lease's end when the holder died. Logged as a
    wait, not as a failure."""

    def __init__(self, reason: str, after_seconds: float = MAX_RETRY_PAUSE_SECONDS) -> None:
        super().__init__(reason)
        self.after_seconds = after_seconds


# Past the end of another instance's lease before looking again: the hosts' clocks may differ a little.
LEASE_MARGIN_SECONDS = 0.25


def lease_wait(lease_until: datetime | None, now: datetime) -> float:
    """`RetryLater.after_seconds` for a holder whose lease runs until `lease_until` (None: not known)."""
    left = (lease_until - now).total_seconds() if lease_until is not None else 0.0
    return max(left, 0.0) + LEASE_MARGIN_SECONDS


def retry_pause(delivery_count: int) -> float:
    """Pause before requeueing a message whose handler failed for a reason that may pass (database down)."""
    return min(0.25 * (2.0 ** max(delivery_count, 0)), MAX_RETRY_PAUSE_SECONDS)


def requeue_pause(error: BaseException, delivery_count: int) -> float:
    """Pause before handing a message back: `retry_pause`, cut short at the moment a `RetryLater` names."""
    pause = retry_pause(delivery_count)
    if isinstance(error, RetryLater):
        return min(pause, max(error.after_seconds, 0.0))
    return pause


def is_outage(error: BaseException) -> bool:
    """The database cannot be reached (down, restarting, failing over), as opposed to a bug or bad data."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionFailure):
            return True
        if isinstance(current, PyMongoError) and current.has_error_label("TransientTransactionError"):
            return True
        current = current.__cause__ or current.__context__
    return False


async def through_outages(call: Callable[[], Awaitable[None]], queue_name: str) -> None:
    """Run `call`, and while it fails because the database is unreachable, wait and run it again, holding the
    message: a requeue would count towards the queue's delivery limit and a long outage would dead-letter
    good messages. Handlers are idempotent (inbox + compare-and-set), so running one again is safe."""
    waits = 0
    while True:
        try:
            await call()
            return
        except Exception as error:
            if not is_outage(error):
                raise
            waits += 1
            pause = min(0.25 * (2 ** min(waits, 6)), OUTAGE_PAUSE_CAP_SECONDS)
            log.warning("message.waiting_for_database", error=type(error).__name__, attempt=waits, pause=pause)
            metrics.MESSAGES_HELD.labels(queue_name).inc()
            await asyncio.sleep(pause)


def current_message(broker: RabbitBroker) -> RabbitMessage:
    """The message a handler runs for, read from FastStream's context.

    Not a `message: RabbitMessage` parameter: FastStream resolves that annotation (a `Context` custom field)
    through FastDepends, which calls its synchronous resolver in a worker thread, one thread hop per message
    (about a tenth of a consumer's CPU in the dispatcher's profile, and a wait on a thread on the latency path).
    """
    message: RabbitMessage | None = broker.context.get_local("message")
    if message is None:
        raise RuntimeError("no message in FastStream's context (called outside a subscriber)")
    return message
