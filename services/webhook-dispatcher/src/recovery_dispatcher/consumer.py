"""Concurrent consumption: many deliveries in flight per process, in order within a payment.

aiormq already runs each delivery in a task of its own (up to the prefetch; tests/integration/runtime/
test_consuming.py), so messages of one queue are handled side by side, including two of the same payment.
Webhooks of one payment must go out in order, so here the subscriber only validates a message and starts a
task; the task waits for the earlier messages of the same payment (its lane), runs the handler, and only then
acknowledges. The broker's prefetch and `max_in_flight` bound how many are in flight. The error handling is
the runtime's (`recovery_runtime.bus`): invalid -> dead-letter with the reason, already applied -> ack,
anything else -> pause, reject and requeue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import ValidationError

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import envelope_model
from recovery_runtime import metrics
from recovery_runtime.bus import (
    AlreadyApplied,
    MessageRejected,
    Publisher,
    current_message,
    retry_pause,
    through_outages,
)
from recovery_runtime.consumer import Handler
from recovery_runtime.topology import QUEUES

log = structlog.get_logger(__name__)

LaneOf = Callable[[Envelope[Any]], str | None]


def _summarise(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in item['loc']) or '(root)'}: {item['msg']}" for item in error.errors()[:10]]
    return "invalid message: " + "; ".join(parts)


async def _raw_body(message: Any) -> bytes:
    return bytes(message.body)


class ConcurrentConsumer:
    def __init__(self, broker: RabbitBroker, publisher: Publisher, max_in_flight: int) -> None:
        self._broker = broker
        self._publisher = publisher
        self._slots = asyncio.Semaphore(max_in_flight)
        self._lanes: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self, grace_seconds: float = 0.0) -> None:
        """Let in-flight deliveries finish within `grace_seconds`, then cancel the rest: unacknowledged
        messages go back to their queue (the broker has stopped handing out new ones by now)."""
        if self._tasks and grace_seconds > 0:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def subscribe(self, queue_name: str, handler: Handler, lane_of: LaneOf) -> Any:
        queue = QUEUES[queue_name]
        model = envelope_model(queue.message_type)

        async def on_message() -> None:
            message = current_message(self._broker)
            raw = message.raw_message
            body = raw.body
            try:
                envelope = model.model_validate_json(body)
                if envelope.type is not queue.message_type:
                    raise MessageRejected(f"message type {envelope.type} does not belong on {queue.name}")
            except (ValidationError, MessageRejected) as error:
                reason = _summarise(error) if isinstance(error, ValidationError) else str(error)
                await self._dead_letter(message, queue, body, reason)
                return
            # Waiting for a free slot here holds the subscriber back: backpressure towards the broker.
            await self._slots.acquire()
            lane = lane_of(envelope)
            previous = self._lanes.get(lane) if lane else None
            mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if lane:
                self._lanes[lane] = mine
            task = asyncio.create_task(self._run(message, queue, envelope, handler, previous, mine, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        on_message.__name__ = f"on_{queue.name.replace('.', '_').replace('-', '_')}"
        subscriber = self._broker.subscriber(
            queue.rabbit_queue(),
            queue.exchange,
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,
            title=queue.name,
            description=f"{queue.message_type.value} messages consumed concurrently from {queue.name}",
        )
        subscriber(on_message)
        return subscriber

    async def _run(
        self,
        message: RabbitMessage,
        queue: Any,
        envelope: Envelope[Any],
        handler: Handler,
        previous: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
        lane: str | None,
    ) -> None:
        started = time.perf_counter()
        raw = message.raw_message
        structlog.contextvars.bind_contextvars(
            queue=queue.name, message_id=envelope.message_id, payment_id=envelope.correlation_id
        )
        try:
            if previous is not None:
                # The same payment's earlier message first (its result does not matter, its turn does).
                await asyncio.shield(previous)
            await through_outages(lambda: handler(envelope, queue), queue.name)
        except AlreadyApplied:
            await message.ack()
            metrics.MESSAGES_CONSUMED.labels(queue.name, "duplicate").inc()
        except MessageRejected as rejection:
            await self._dead_letter(message, queue, raw.body, str(rejection))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await message.reject(requeue=True)
            raise
        except Exception:
            deliveries = int((raw.headers or {}).get("x-delivery-count", 0) or 0)
            log.exception("message.failed", delivery_count=deliveries)
            metrics.MESSAGES_CONSUMED.labels(queue.name, "failed").inc()
            await asyncio.sleep(retry_pause(deliveries))
            await message.reject(requeue=True)
        else:
            await message.ack()
            metrics.MESSAGES_CONSUMED.labels(queue.name, "applied").inc()
            metrics.HANDLER_SECONDS.labels(queue.name).observe(time.perf_counter() - started)
        finally:
            if not mine.done():
                mine.set_result(None)
            if lane and self._lanes.get(lane) is mine:
                del self._lanes[lane]
            self._slots.release()

    async def _dead_letter(self, message: RabbitMessage, queue: Any, body: bytes, reason: str) -> None:
        log.warning("message.rejected", reason=reason, queue=queue.name)
        raw = message.raw_message
        try:
            await self._publisher.dead_letter(queue, body, reason, dict(raw.headers or {}), message_id=raw.message_id)
        except Exception:
            log.exception("message.dead_letter_publish_failed")
            await message.reject(requeue=False)
        else:
            await message.ack()
        metrics.MESSAGES_CONSUMED.labels(queue.name, "rejected").inc()
