"""Traces (OpenTelemetry): one recovery is one trace, from the HTTP request through every message to the webhook POST.

On when OTEL_EXPORTER_OTLP_ENDPOINT is set (`start_tracing`, called once by `Service`): spans go over OTLP/HTTP
to that collector, named by service (`recovery-<service>` unless OTEL_SERVICE_NAME says otherwise), sampled as
the standard OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG say (parent-based, always on, by default). Traced then:
FastAPI requests, every publish and consume on the broker (FastStream's RabbitTelemetryMiddleware on the broker,
so the consumer pipeline of every queue runs inside its message's span), httpx calls (connectors, record back,
intake's forwarding) and aiohttp calls (webhook deliveries); W3C `traceparent` travels in the AMQP headers and
the HTTP requests.

A message is not always published by the code that emitted it: the outbox relay republishes what a crash left
behind, and a durable timer publishes its message when due, maybe days later. So an outgoing message records the
trace context it was emitted in (`current_trace_context`, stored with the message in the outbox, the state
document or the timer) and its publish runs in that context again (`continued`): the trace goes on through the
timer instead of starting anew.

Off (no endpoint), nothing is installed: no SDK, no middleware, no instrumentation; the only cost left on the
hot path is `current_trace_context` finding no valid span (a context variable read) for each emitted message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

    from recovery_runtime.settings import ServiceSettings

# W3C Trace Context only (`traceparent`, `tracestate`): what a stored message keeps of its context.
_W3C = TraceContextTextMapPropagator()
# Routes probes and scrapers call every few seconds: no span for them.
UNTRACED_ROUTES = "healthz,readyz,metrics"
# How long a stopping service waits for its last spans to leave.
FLUSH_TIMEOUT_MILLIS = 5_000
TraceContext = dict[str, str]


def current_trace_context() -> TraceContext | None:
    """The W3C headers of the span running now, to store with a message emitted in it; None when there is none
    (tracing off, or outside any span)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: TraceContext = {}
    _W3C.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def continued(trace_context: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in the stored `trace_context` (a message's publish, a timer's re-plan); nothing without one."""
    if not trace_context:
        yield
        return
    token = otel_context.attach(_W3C.extract(trace_context))
    try:
        yield
    finally:
        otel_context.detach(token)


def otlp_endpoint(settings: ServiceSettings) -> str | None:
    """Where spans go, or None for tracing off (no endpoint, or OTEL_SDK_DISABLED=true)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return settings.otel_exporter_otlp_endpoint or None


class Tracing:
    """A service's tracer provider and what it instruments with it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    def broker_middlewares(self) -> list[Any]:
        """Around every consume and publish of the broker: spans, and `traceparent` in the AMQP headers."""
        from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware

        return [RabbitTelemetryMiddleware(tracer_provider=self.provider)]

    def instrument(self, app: FastAPI) -> None:
        """A server span per HTTP request (continuing the caller's `traceparent`), the probes left out."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, excluded_urls=UNTRACED_ROUTES, exclude_spans=["receive", "send"]
        )

    async def flush(self) -> None:
        """Export what is left (on stop), off the event loop: the exporter posts synchronously."""
        await asyncio.to_thread(self.provider.force_flush, FLUSH_TIMEOUT_MILLIS)


def start_tracing(service: str, settings: ServiceSettings) -> Tracing | None:
    """Tracing for this process when an OTLP endpoint is configured, else None (off)."""
    endpoint = otlp_endpoint(settings)
    if endpoint is None:
        return None
    # Imported only when tracing is on: a service without it loads none of the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    traces_url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or f"{endpoint.rstrip('/')}/v1/traces"
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or f"recovery-{service}",
            "service.namespace": "recovery",
            "service.instance.id": settings.service_instance_id,
        }
    )
    # The sampler comes from OTEL_TRACES_SAMPLER (parent-based always-on by default): a trace sampled at intake
    # is sampled everywhere, its `traceparent` carrying the decision.
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    # Global: the HTTP client instrumentations (and any library using the API) report through it.
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    return Tracing(provider)
