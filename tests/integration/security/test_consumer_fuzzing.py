"""Property-based fuzzing of every consumer: random and mutated messages never crash one; each is dead-lettered
with `x-rejection-reason`, and the consumers keep going (every queue drains, no handler failure is counted)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aio_pika
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from recovery_contracts.envelope import MessageType
from recovery_executor.app import build_service as build_executor
from recovery_executor.settings import ExecutorSettings
from recovery_runtime import metrics
from recovery_runtime.bus import REJECTION_HEADER
from recovery_runtime.topology import DEAD_LETTER, QUEUES
from support.broker import broker_probe, eventually
from support.services import settings_for
from support.stack import Isolation

PER_QUEUE = 12
PERSISTENT = aio_pika.DeliveryMode.PERSISTENT

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def envelope(message_type: MessageType, payload: Any) -> dict[str, Any]:
    return {
        "message_id": "01992a6e-7c1a-7b3e-9f2d-3c4b5a697887",
        "type": message_type.value,
        "version": 1,
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "correlation_id": None,
        "causation_id": None,
        "merchant_id": "fuzz_merchant",
        "profile_id": "pro_fuzz",
        "payload": payload,
    }


def bad_messages(message_type: MessageType) -> st.SearchStrategy[bytes]:
    """Bytes that can never be a valid `message_type` envelope."""
    other_type = st.sampled_from([t for t in MessageType if t is not message_type])
    random_bytes = st.binary(max_size=300).filter(lambda b: not b.strip().startswith(b"{"))
    not_an_object = json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode())
    random_payload = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=5).map(
        lambda payload: {**payload, "\u00a7unknown": 1}
    )
    mutated = st.one_of(
        random_payload.map(lambda p: envelope(message_type, p)),
        other_type.map(lambda t: {**envelope(message_type, {}), "type": t.value}),
        st.sampled_from(["message_id", "type", "occurred_at", "payload"]).map(
            lambda key: {k: v for k, v in envelope(message_type, {}).items() if k != key}
        ),
        json_values.map(lambda v: {**envelope(message_type, {}), "version": v if v != 1 else 0}),
    ).map(lambda value: json.dumps(value).encode())
    truncated = mutated.map(lambda body: body[: len(body) // 2])
    return st.one_of(random_bytes, not_an_object, mutated, truncated)


def draw(message_type: MessageType, count: int) -> list[bytes]:
    drawn: list[bytes] = []

    @seed(8)
    @settings(max_examples=count, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(bad_messages(message_type))
    def collect(body: bytes) -> None:
        drawn.append(body)

    collect()
    return drawn[:count]


@pytest.fixture(scope="module")
def executor(serve: Any, module_isolation: Isolation) -> Any:
    return serve(build_executor(settings_for(ExecutorSettings, module_isolation)))


def failures(queue: str) -> float:
    return metrics.MESSAGES_CONSUMED.labels(queue, "failed")._value.get()


async def test_bad_messages_on_every_queue_are_dead_lettered_with_a_reason(
    services: Any, executor: Any, module_isolation: Isolation
) -> None:
    sent: dict[str, int] = {}
    failed_before = {name: failures(name) for name in QUEUES}
    async with broker_probe(module_isolation.rabbitmq_url) as broker:
        for name, queue in QUEUES.items():
            bodies = draw(queue.message_type, PER_QUEUE)
            for body in bodies:
                # Straight onto the consumer's queue (default exchange), as a broken publisher would.
                message = aio_pika.Message(body, message_id=str(uuid.uuid4()), delivery_mode=PERSISTENT)
                await broker.channel.default_exchange.publish(message, routing_key=name)
            sent[name] = len(bodies)
        for name, count in sent.items():
            dlq = f"{name}.dlq"

            async def dead_lettered(dlq: str = dlq, count: int = count) -> bool:
                return await broker.depth(dlq) >= count

            assert await eventually(dead_lettered, timeout=60), f"{name}: not every bad message reached {dlq}"
            for _ in range(count):
                message = await broker.take(dlq)
                assert message.headers.get(REJECTION_HEADER), f"{dlq}: a message without a rejection reason"
            assert await broker.depth(name) == 0
    assert {name: failures(name) - failed_before[name] for name in QUEUES} == dict.fromkeys(QUEUES, 0)
    assert DEAD_LETTER
