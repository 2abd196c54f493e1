"""Trace context through the outbox and the broker: a message stores the context it was emitted in, and its publish,
however late (the relay, a durable timer), continues that trace; off, nothing is stored and nothing installed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import DeliverWebhook
from recovery_runtime.bus import OutgoingMessage, Publisher
from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.testing import InMemoryUnitOfWork, RecordingPublisher, SpansInMemory
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.tracing import continued, current_trace_context, start_tracing

QUEUE = "dispatcher.deliver-webhook"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def deliver(payment: str = "pay_1") -> Envelope[DeliverWebhook]:
    return envelope_for(
        MessageType.DELIVER_WEBHOOK,
        DeliverWebhook(initial_attempt_id=f"evt_{payment}", retry_index=1),
        correlation_id=payment,
        merchant_id="m1",
    )


@pytest.fixture
def spans() -> Iterator[SpansInMemory]:
    kept = SpansInMemory()
    yield kept
    kept.provider.shutdown()


def traced_service(spans: SpansInMemory, recorder: RecordingPublisher) -> Service:
    return Service(
        "dispatcher",
        ServiceSettings(),
        publisher=recorder,
        unit_of_work=InMemoryUnitOfWork(recorder),
        tracing=spans.tracing,
    )


def test_a_message_emitted_in_a_span_stores_that_span_and_keeps_it_through_its_document(spans: SpansInMemory) -> None:
    with spans.span("handler") as span:
        message = OutgoingMessage.of(deliver())
    assert message.trace_context == spans.traceparent(span.get_span_context())
    stored = message.to_document(NOW)
    assert stored["trace_context"] == message.trace_context
    assert OutgoingMessage.from_document(stored) == message


def test_without_a_span_nothing_is_stored_and_continued_changes_nothing() -> None:
    message = OutgoingMessage.of(deliver())
    assert message.trace_context is None
    assert "trace_context" not in message.to_document(NOW)
    assert OutgoingMessage.from_document(message.to_document(NOW)).trace_context is None
    with continued(None):
        assert current_trace_context() is None


async def test_a_stored_message_published_later_continues_the_trace_it_was_emitted_in(spans: SpansInMemory) -> None:
    """The relay's and the timer loop's case: published outside any span, from the stored document."""
    svc = traced_service(spans, RecordingPublisher())
    handled_in: list[trace.SpanContext] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        handled_in.append(trace.get_current_span().get_span_context())

    svc.consume(QUEUE, handle)
    with spans.span("stored the timer") as stored_in:
        document = OutgoingMessage.of(deliver()).to_document(NOW)
    assert current_trace_context() is None
    async with TestRabbitBroker(svc.broker) as broker:
        await Publisher(broker).publish(OutgoingMessage.from_document(document))

    origin = stored_in.get_span_context()
    [create] = spans.finished("recovery.commands.webhook.deliver create")
    [publish] = spans.finished("recovery.commands.webhook.deliver publish")
    [process] = spans.finished("recovery.commands.webhook.deliver process")
    assert {s.context.trace_id for s in (create, publish, process)} == {origin.trace_id}
    assert create.kind is SpanKind.PRODUCER and create.parent is not None
    assert create.parent.span_id == origin.span_id
    assert publish.parent is not None and publish.parent.span_id == create.context.span_id
    # The consumer continues from the `traceparent` the publish put in the AMQP headers.
    assert process.kind is SpanKind.CONSUMER and process.parent is not None
    assert process.parent.span_id == create.context.span_id
    assert handled_in == [process.context]


async def test_a_handler_emits_its_messages_in_the_span_of_the_message_it_handles(spans: SpansInMemory) -> None:
    recorder = RecordingPublisher()
    svc = traced_service(spans, recorder)

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        async def emit(tx: Any) -> None:
            tx.emit(deliver("pay_2"))

        await svc.unit_of_work.apply(emit, consumed=envelope, consumer=queue.name)

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        await Publisher(broker).publish(OutgoingMessage.of(deliver()))

    [process] = spans.finished("process")
    [emitted] = recorder.published
    assert emitted.trace_context == spans.traceparent(process.context)


def test_tracing_is_off_without_an_endpoint_and_when_the_sdk_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert start_tracing("executor", ServiceSettings()) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert start_tracing("executor", ServiceSettings(otel_exporter_otlp_endpoint="http://127.0.0.1:4318")) is None
    recorder = RecordingPublisher()
    svc = Service("executor", ServiceSettings(), publisher=recorder, unit_of_work=InMemoryUnitOfWork(recorder))
    assert svc.tracing is None
    assert [type(m).__name__ for m in svc.broker.middlewares] == ["RabbitPrometheusMiddleware"]
