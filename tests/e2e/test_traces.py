"""One recovery is one trace: the four service processes export their spans over OTLP/HTTP to a collector on
loopback (this test's, decoding the protobuf as Jaeger would), and the spans of the recovery's trace run with
unbroken parent links from `POST /v2/payments/recovery` at intake, through the scheduler's durable timer and the
executor's connector call, to the webhook dispatcher's POST to the merchant."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from support.stack import StackFactory, seed_scenario

SERVICES = ("recovery-intake", "recovery-scheduler", "recovery-executor", "recovery-dispatcher")


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


class OtlpCollector:
    """An OTLP/HTTP traces endpoint (`POST /v1/traces`, protobuf) keeping every span it is sent in memory."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                collector.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ExportedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        yield running


def path_to_root(span: ExportedSpan, spans: dict[str, ExportedSpan]) -> list[ExportedSpan]:
    path = [span]
    while path[-1].parent_id:
        path.append(spans[path[-1].parent_id])
    return path


def wait_for_trace(
    collector: OtlpCollector, trace_id: str, webhook_span_id: str, timeout: float = 30.0
) -> list[ExportedSpan]:
    """The trace once the webhook POST's span and every parent it names have arrived (processes export in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collector.trace(trace_id)
        by_id = {s.span_id: s for s in spans}
        if webhook_span_id in by_id and all(not s.parent_id or s.parent_id in by_id for s in spans):
            return spans
        if time.monotonic() >= deadline:
            missing = sorted({s.parent_id for s in spans if s.parent_id and s.parent_id not in by_id})
            pytest.fail(
                f"trace {trace_id} incomplete after {timeout:.0f}s: {len(spans)} spans, parents missing {missing}"
            )
        time.sleep(0.2)


def test_one_recovery_is_one_trace_across_the_four_services(
    start_stack: StackFactory, collector: OtlpCollector
) -> None:
    stack = start_stack(extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    scenario = seed_scenario(stack)
    setup = scenario.bootstrap()
    customer, payment_method = scenario.customer_with_card("pm_card_visa")
    payment_id = scenario.request_recovery(setup, customer, payment_method)["id"]
    webhook = scenario.wait_for_webhook(payment_id, timeout=60)

    # The merchant's POST carried W3C trace context: its trace is the recovery's, its parent the dispatcher's span.
    headers = {name.lower(): value for name, value in webhook.headers}
    version, trace_id, webhook_span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    spans = wait_for_trace(collector, trace_id, webhook_span_id)
    by_id = {s.span_id: s for s in spans}

    [root] = [s for s in spans if not s.parent_id]
    assert (root.service, root.name, root.kind) == (
        "recovery-intake",
        "POST /v2/payments/recovery",
        SpanProto.SPAN_KIND_SERVER,
    )
    assert {s.service for s in spans} >= set(SERVICES)

    posted = by_id[webhook_span_id]
    assert (posted.service, posted.name, posted.kind) == (
        "recovery-dispatcher",
        "POST",
        SpanProto.SPAN_KIND_CLIENT,
    )
    path = path_to_root(posted, by_id)
    assert path[-1] is root
    hops = [s.service for i, s in enumerate(path) if i == 0 or s.service != path[i - 1].service]
    assert hops == list(reversed(SERVICES)), [(s.service, s.name) for s in path]
    names = [s.name for s in reversed(path)]
    # The scheduler's part is its consumer, then (a durable timer later) the publish of the executor's command.
    assert "recovery.events.recovery.scheduled process" in names
    assert "recovery.commands.payment.execute-retry create" in names
    assert "recovery.events.payment.succeeded process" in names

    # The executor's connector call (httpx) to the Stripe-compatible sandbox, inside the execute-retry's span.
    charges = [
        s
        for s in spans
        if s.service == "recovery-executor"
        and s.kind == SpanProto.SPAN_KIND_CLIENT
        and "/v1/payment_intents" in s.attributes.get("url.full", s.attributes.get("http.url", ""))
    ]
    assert charges, [(s.service, s.name, s.attributes) for s in spans]
    assert {by_id[c.parent_id].name for c in charges} == {"recovery.commands.payment.execute-retry process"}
