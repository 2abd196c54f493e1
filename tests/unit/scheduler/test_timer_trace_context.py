"""A durable timer keeps the trace it was stored in: when it fires, days later, its message's publish (and a
re-plan's work) continues the recovery's trace rather than starting a new one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker
from opentelemetry import trace

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import DeliverWebhook
from recovery_runtime.bus import Publisher
from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.testing import FixedClock, InMemoryUnitOfWork, RecordingPublisher, SpansInMemory
from recovery_runtime.topology import ConsumerQueue
from recovery_scheduler.adapters.timers import claimed_timer, stored_timer
from recovery_scheduler.dependencies import Claim
from recovery_scheduler.domain.timers import Timer, TimerKind
from recovery_scheduler.timer_loop import TimerLoop

from .builders import T0

DELIVERED_ON = "dispatcher.deliver-webhook"


@pytest.fixture
def spans() -> Iterator[SpansInMemory]:
    kept = SpansInMemory()
    yield kept
    kept.provider.shutdown()


def message_timer() -> Timer:
    deliver = envelope_for(
        MessageType.DELIVER_WEBHOOK, DeliverWebhook(initial_attempt_id="evt_1", retry_index=1), correlation_id="pay_1"
    )
    return Timer("webhook:evt_1:1", TimerKind.MESSAGE, T0, "pay_1", "webhook_retry", T0, deliver)


def replan_timer() -> Timer:
    return Timer("replan:pay_1:2", TimerKind.REPLAN, T0, "pay_1", "replan", T0)


class OneClaim:
    """The claims port handing the timer loop one batch of the given documents, as MongoDB would read them back."""

    def __init__(self, *documents: dict[str, Any]) -> None:
        self.claim = Claim("owner:1")
        self.claim.timers = [claimed_timer({**d, "status": "fired"}) for d in documents]
        self.completed: list[str] = []

    async def release_expired(self, now: Any) -> int:
        return 0

    async def take_over_expired(self, now: Any, owner: str, lease: Any, limit: int = 10) -> list[Claim]:
        return []

    async def claim_due(self, now: Any, owner: str, lease: Any, limit: int, **window: Any) -> Claim:
        claim, self.claim = self.claim, Claim("owner:2")
        return claim

    async def complete(self, claim: Claim) -> None:
        self.completed.append(claim.claim_id)


def test_a_stored_timer_keeps_the_trace_context_it_was_stored_in(spans: SpansInMemory) -> None:
    with spans.span("recovery.scheduled process") as span:
        with_message, replan = stored_timer(message_timer()), stored_timer(replan_timer())
    expected = spans.traceparent(span.get_span_context())
    # A message timer's message carries it (as in the outbox); a re-plan timer, having none, carries it itself.
    assert with_message["message"]["trace_context"] == expected and "trace_context" not in with_message
    assert replan["trace_context"] == expected
    claimed = claimed_timer(with_message)
    assert claimed.message is not None and claimed.message.trace_context == expected
    assert claimed_timer(replan).trace_context == expected


def test_without_tracing_a_timer_stores_no_trace_context() -> None:
    with_message, replan = stored_timer(message_timer()), stored_timer(replan_timer())
    assert "trace_context" not in with_message["message"] and "trace_context" not in replan


async def test_a_fired_timer_continues_the_trace_it_was_stored_in(spans: SpansInMemory) -> None:
    with spans.span("recovery.scheduled process") as span:
        documents = stored_timer(message_timer()), stored_timer(replan_timer())
    origin = span.get_span_context()
    recorder = RecordingPublisher()
    receiver = Service(
        "dispatcher",
        ServiceSettings(),
        publisher=recorder,
        unit_of_work=InMemoryUnitOfWork(recorder),
        tracing=spans.tracing,
    )
    consumed_in: list[trace.SpanContext] = []
    replanned_in: list[trace.SpanContext] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        consumed_in.append(trace.get_current_span().get_span_context())

    async def replan(payment_id: str) -> None:
        replanned_in.append(trace.get_current_span().get_span_context())

    receiver.consume(DELIVERED_ON, handle)
    claims = OneClaim(*documents)
    async with TestRabbitBroker(receiver.broker) as broker:
        loop = TimerLoop(
            claims, Publisher(broker), replan, FixedClock(), "owner", poll_seconds=1, batch_size=10, lease=timedelta(1)
        )  # type: ignore[arg-type]
        assert await loop.fire_due() == 2

    assert claims.completed == ["owner:1"]
    assert [c.trace_id for c in consumed_in] == [origin.trace_id]
    [create] = spans.finished("recovery.commands.webhook.deliver create")
    assert create.parent is not None and create.parent.span_id == origin.span_id
    assert [(c.trace_id, c.span_id) for c in replanned_in] == [(origin.trace_id, origin.span_id)]
