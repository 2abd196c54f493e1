"""The one consumer pipeline every service uses: a FastStream middleware around a small handler.

A handler is `async def handle(envelope, queue) -> None`: it applies the message or raises. Everything around
it is here, once:

- validation: the raw body against the queue's envelope model; invalid -> dead-lettered with the reason;
- `MessageRejected` (can never apply) -> dead-lettered with the reason, the original routing kept for a replay;
- `AlreadyApplied` (a redelivery or duplicate) -> acknowledged;
- a database outage -> the message is held and the handler run again (handlers are idempotent);
- any other error (or a `RetryLater` wait) -> a pause, then rejected and requeued (counted towards the queue's
  delivery limit); on the last delivery the limit allows, dead-lettered with the last error as the reason;
- ordering lanes (optional): messages with the same lane key run one after another, in arrival order, while
  others run side by side (aiormq hands every delivery to a task of its own, up to the channel's prefetch).

Acknowledgement is FastStream's (`AckPolicy.REJECT_ON_ERROR`, steered by raising `AckMessage`/`RejectMessage`);
no service acknowledges anything itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import structlog
from faststream import AckPolicy, BaseMiddleware
from faststream.exceptions import AckMessage, RejectMessage
from faststream.message import StreamMessage
from faststream.rabbit import RabbitRouter
from faststream.rabbit.subscriber import RabbitSubscriber
from pydantic import ValidationError

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import read_message
from recovery_runtime import metrics
from recovery_runtime.bus import AlreadyApplied, MessageRejected, Publisher, RetryLater, requeue_pause, through_outages
from recovery_runtime.topology import DELIVERY_LIMIT, QUEUES, ConsumerQueue

log = structlog.get_logger(__name__)

T = TypeVar("T")
Handler = Callable[[Envelope[Any], ConsumerQueue], Awaitable[None]]
LaneOf = Callable[[Envelope[Any]], str | None]

# The envelope the pipeline validated, for the handler call it wraps (one value per delivery task).
_ENVELOPE: contextvars.ContextVar[Envelope[Any]] = contextvars.ContextVar("recovery_envelope")


def gave_up(error: BaseException, deliveries: int) -> str:
    """The dead-letter reason of a message whose every delivery failed or had to wait."""
    waited = "waited" if isinstance(error, RetryLater) else "failed"
    last = f"{type(error).__name__}: {error}"
    return f"{waited} on each of {deliveries + 1} deliveries (the queue's limit); the last: {last}"


def summarise(error: ValidationError) -> str:
    """A dead-letter reason naming each invalid field (the first ten)."""
    parts = []
    for item in error.errors()[:10]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "invalid message: " + "; ".join(parts)


class Lanes:
    """Per-key ordering: a message takes its key's turn on arrival and waits for the earlier messages of that key.

    The turn is taken synchronously on arrival (before any await), so the order is the order deliveries reached
    the pipeline; a failed message still hands the turn on (its redelivery comes later, behind the others).
    One `Lanes` may serve several queues of a service (the dispatcher's payment events and webhook retries share
    the payment's lane), and `max_in_flight` bounds how many of their messages are handled at once: slots are
    taken in arrival order, after the turn, so a message never holds a slot its predecessor is waiting for."""

    def __init__(self, max_in_flight: int | None = None) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    def __len__(self) -> int:
        return len(self._tails)

    def take_turn(self, key: str) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        previous = self._tails.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        return previous, mine

    def hand_on(self, key: str, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._tails.get(key) is mine:
            del self._tails[key]

    async def run(self, key: str | None, call: Callable[[], Awaitable[T]]) -> T:
        """`call` in `key`'s turn (none: at once) and within the in-flight bound."""
        previous, mine = self.take_turn(key) if key is not None else (None, None)
        try:
            if self._slots is not None:
                await self._slots.acquire()
            try:
                if previous is not None:
                    # The same key's earlier message first (its result does not matter, its turn does).
                    await asyncio.shield(previous)
                return await call()
            finally:
                if self._slots is not None:
                    self._slots.release()
        finally:
            if key is not None and mine is not None:
                self.hand_on(key, mine)


class ConsumerPipeline:
    """The middleware factory of one queue's subscriber (FastStream builds one middleware per delivery)."""

    def __init__(
        self, queue: ConsumerQueue, publisher: Publisher, lane_of: LaneOf | None = None, lanes: Lanes | None = None
    ) -> None:
        self.queue = queue
        self.publisher = publisher
        self.lane_of = lane_of
        self.lanes = lanes if lanes is not None else Lanes()

    def __call__(self, msg: Any, /, *, context: Any) -> _PipelineRun:
        return _PipelineRun(msg, context=context, pipeline=self)

    def validate(self, body: bytes) -> Envelope[Any]:
        try:
            envelope = read_message(self.queue.message_type, body)
        except ValidationError as error:
            raise MessageRejected(summarise(error)) from error
        if envelope.type is not self.queue.message_type:
            raise MessageRejected(f"message type {envelope.type} does not belong on {self.queue.name}")
        return envelope

    async def dead_letter(self, message: StreamMessage[Any], reason: str) -> NoReturn:
        raw = message.raw_message
        log.warning("message.rejected", reason=reason)
        try:
            await self.publisher.dead_letter(
                self.queue, raw.body, reason, dict(raw.headers or {}), message_id=raw.message_id
            )
        except Exception:
            # Could not publish with the reason: RabbitMQ dead-letters it without one (its DLQ counts it; counted
            # here too, a message the broker then redelivers, its reject lost, would count twice).
            log.exception("message.dead_letter_publish_failed")
            raise RejectMessage(requeue=False) from None
        metrics.MESSAGES_CONSUMED.labels(self.queue.name, "rejected").inc()
        raise AckMessage()


class _PipelineRun(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, pipeline: ConsumerPipeline) -> None:
        super().__init__(msg, context=context)
        self.pipeline = pipeline

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        pipeline, queue = self.pipeline, self.pipeline.queue
        raw = msg.raw_message
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(queue=queue.name, message_id=raw.message_id)
        try:
            try:
                envelope = pipeline.validate(raw.body)
            except MessageRejected as rejection:
                await pipeline.dead_letter(msg, str(rejection))
            structlog.contextvars.bind_contextvars(message_id=envelope.message_id, payment_id=envelope.correlation_id)
            _ENVELOPE.set(envelope)
            lane = pipeline.lane_of(envelope) if pipeline.lane_of is not None else None
            try:
                await pipeline.lanes.run(lane, lambda: through_outages(lambda: call_next(msg), queue.name))
            except AlreadyApplied:
                log.info("message.duplicate")
                metrics.MESSAGES_CONSUMED.labels(queue.name, "duplicate").inc()
                raise AckMessage() from None
            except MessageRejected as rejection:
                await pipeline.dead_letter(msg, str(rejection))
            except (asyncio.CancelledError, AckMessage, RejectMessage):
                raise
            except Exception as error:
                deliveries = int((raw.headers or {}).get("x-delivery-count", 0) or 0)
                if deliveries >= DELIVERY_LIMIT:
                    # The last delivery the queue allows: handed back, RabbitMQ would dead-letter it saying only
                    # `delivery_limit`. Dead-lettered here instead, with what kept it from applying.
                    await pipeline.dead_letter(msg, gave_up(error, deliveries))
                pause = requeue_pause(error, deliveries)
                if isinstance(error, RetryLater):
                    log.info("message.retry_later", reason=f"{type(error).__name__}: {error}", pause=round(pause, 2))
                    metrics.MESSAGES_CONSUMED.labels(queue.name, "retry_later").inc()
                else:
                    log.exception("message.failed", delivery_count=deliveries)
                    metrics.MESSAGES_CONSUMED.labels(queue.name, "failed").inc()
                await asyncio.sleep(pause)
                # reject (not nack) so the quorum queue counts it towards x-delivery-limit on 3.x and 4.x alike.
                raise RejectMessage(requeue=True) from None
            metrics.MESSAGES_CONSUMED.labels(queue.name, "applied").inc()
            metrics.HANDLER_SECONDS.labels(queue.name).observe(time.perf_counter() - started)
            # Handlers answer nothing: what they emit goes through the outbox.
            return None
        finally:
            structlog.contextvars.unbind_contextvars("queue", "message_id", "payment_id")


def subscribe(
    queue_name: str,
    handler: Handler,
    publisher: Publisher,
    *,
    lane_of: LaneOf | None = None,
    lanes: Lanes | None = None,
    declare: bool = True,
) -> tuple[RabbitRouter, RabbitSubscriber]:
    """A router holding `queue_name`'s subscriber with the pipeline around `handler`; include it in the broker.
    With `declare=False` (DECLARE_TOPOLOGY=false) the subscriber declares and binds nothing: it looks its queue
    up, which needs no configure permission."""
    queue = QUEUES[queue_name]
    router = RabbitRouter(middlewares=[ConsumerPipeline(queue, publisher, lane_of, lanes)])

    async def on_message() -> None:
        await handler(_ENVELOPE.get(), queue)

    on_message.__name__ = f"on_{queue.name.replace('.', '_').replace('-', '_')}"
    subscriber = router.subscriber(
        queue.rabbit_queue(declare=declare),
        queue.exchange,
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        decoder=_raw_body,
        title=queue.name,
        description=f"{queue.message_type.value} messages (envelope JSON) consumed from {queue.name}",
    )
    subscriber(on_message)
    return router, subscriber


async def _raw_body(message: Any) -> bytes:
    # The pipeline validates the raw bytes itself (one pass, and its failure is ours to handle).
    return bytes(message.body)
