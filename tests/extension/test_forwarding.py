"""What the function sends to the receiver goes through the pipeline's own buffers and leaves with its flush,
in the same request as the platform's spans, its root span under the invocation span."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from extension.buffer import Buffer
from extension.convert.health import ExtensionHealth
from extension.convert.logs import LogAssembler
from extension.convert.metrics import PlatformMetrics
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.events import Invoke, TraceContext
from extension.export.otlp import LOGS, METRICS, TRACES, ExportResult
from extension.forwarded import Forwarded
from extension.metering import Metering
from extension.outbox import Outbox
from extension.pipeline import LogRecords, Pipeline
from extension.telemetry import SpanData

ROOT = "5759e988bd862e3fe1be46a994272793"
HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
REQUEST_ID = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"


@dataclass
class Exporter:
    """Encodes every export with the real codec, as the OTLP exporter would, and keeps the requests."""

    codec: Any
    request: type[Any]  # the signal's Export*ServiceRequest, to read the bodies back
    requests: list[Any] = field(default_factory=list)

    async def export(self, items: Sequence[Any], *, deadline: float | None) -> ExportResult:
        self.requests.append(self.request.FromString(self.codec.encode(items, "http/protobuf")))
        return ExportResult(ok=True, items=len(items), duration_s=0.0, status=200)

    def closing(self) -> None:
        pass


class Ids:
    def __init__(self) -> None:
        self.next = 0x100

    def generate_trace_id(self) -> int:
        return 0xABC

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next


def batch(*events: tuple[str, str, dict[str, Any]]) -> bytes:
    return json.dumps([{"time": time, "type": kind, "record": record} for time, kind, record in events]).encode()


START = ("2025-01-07T19:49:07.310Z", "platform.start",
         {"requestId": REQUEST_ID, "version": "$LATEST",
          "tracing": {"spanId": "54565fb41ac79632", "type": "X-Amzn-Trace-Id", "value": HEADER}})
DONE = ("2025-01-07T19:49:07.320Z", "platform.runtimeDone",
        {"requestId": REQUEST_ID, "status": "success", "metrics": {"durationMs": 10.0}})


def the_functions_request() -> ExportTraceServiceRequest:
    root = Span(name="handler", trace_id=bytes.fromhex(ROOT), span_id=bytes.fromhex("00000000000000aa"),
                parent_span_id=bytes.fromhex("53995c3f42cd8ad8"))
    child = Span(name="query", trace_id=bytes.fromhex(ROOT), span_id=bytes.fromhex("00000000000000bb"),
                 parent_span_id=root.span_id)
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[root, child])])])


def build(span_buffer: int = 100) -> tuple[Pipeline, Exporter, Exporter, Exporter]:
    resource = lambda_resource(service_name="shop", function_name="shop")
    assembler = SpanAssembler(resource=resource, function_name="shop", ids=Ids())
    spans, logs, metrics = (Exporter(TRACES, ExportTraceServiceRequest), Exporter(LOGS, ExportLogsServiceRequest),
                            Exporter(METRICS, ExportMetricsServiceRequest))
    records = LogRecords(assembler=LogAssembler(resource=resource, ids_of=assembler.ids_of),
                         outbox=Outbox(Buffer[Any](100), logs, max_per_export=100))
    metering = Metering(metrics, platform=PlatformMetrics("delta"), health=ExtensionHealth("delta"),
                        resource=lambda: resource, interval_s=3600)
    pipeline = Pipeline(assembler, Buffer[SpanData | Forwarded[Span]](span_buffer), spans, logs=records,
                        metering=metering)
    return pipeline, spans, logs, metrics


def sent_spans(exporter: Exporter) -> dict[str, Span]:
    return {span.name: span for request in exporter.requests for group in request.resource_spans
            for scope in group.scope_spans for span in scope.spans}


async def test_the_functions_spans_leave_with_the_flush_under_the_invocation_span() -> None:
    pipeline, spans, _, _ = build()
    pipeline.note_invoke(Invoke(request_id=REQUEST_ID, deadline_ms=1, invoked_function_arn="arn",
                                tracing=TraceContext(type="X-Amzn-Trace-Id", value=HEADER)))
    pipeline.forward(the_functions_request())  # before platform.start: the Telemetry API buffers for 25 ms
    assert pipeline.pending == 2
    pipeline.accept(batch(START, DONE))

    outcome = await pipeline.flush(deadline=float("inf"))

    assert outcome.exported == 2 + 1  # the function's two and the invocation span
    assert len(spans.requests) == 1  # one request holds both
    sent = sent_spans(spans)
    assert sent["handler"].trace_id.hex() == ROOT == sent["shop"].trace_id.hex()
    assert sent["handler"].parent_span_id == sent["shop"].span_id == bytes.fromhex("54565fb41ac79632")
    assert sent["query"].parent_span_id == sent["handler"].span_id


async def test_at_a_cold_start_what_came_before_the_invoke_was_read_still_joins_its_invocation() -> None:
    """The receiver may serve the function's first export before the extension has read the INVOKE it belongs
    to (both waited in socket queues while the extension was importing)."""
    pipeline, spans, _, _ = build()
    pipeline.forward(the_functions_request())
    pipeline.note_invoke(Invoke(request_id=REQUEST_ID, deadline_ms=1, invoked_function_arn="arn",
                                tracing=TraceContext(type="X-Amzn-Trace-Id", value=HEADER)))
    pipeline.accept(batch(START, DONE))

    await pipeline.flush(deadline=float("inf"))

    sent = sent_spans(spans)
    assert sent["handler"].parent_span_id == sent["shop"].span_id == bytes.fromhex("54565fb41ac79632")
    assert sent["query"].parent_span_id == sent["handler"].span_id


async def test_a_half_full_buffer_asks_for_a_flush_before_it_drops_anything() -> None:
    """A function that makes spans faster than the flush policy sends them: the background flush is woken."""
    pipeline, _, _, _ = build(span_buffer=8)
    kicks: list[None] = []
    pipeline.on_backlog = lambda: kicks.append(None)

    pipeline.forward(the_functions_request())  # 2 of 8
    pipeline.accept(batch(START, DONE))  # the invocation span and nothing else: 3 of 8
    assert kicks == []
    pipeline.forward(the_functions_request())  # 5 of 8

    assert len(kicks) == 1 and pipeline.pending == 5


async def test_log_records_and_metrics_go_to_their_own_buffers() -> None:
    pipeline, _, logs, metrics = build()
    pipeline.forward(ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(
        log_records=[LogRecord(severity_text="INFO")] * 3)])]))
    pipeline.forward(ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(
        metrics=[Metric(name="orders")])])]))

    await pipeline.flush(deadline=float("inf"))

    [log_request] = logs.requests
    assert len(log_request.resource_logs[0].scope_logs[0].log_records) == 3
    # No window is due yet (an hour's interval): the function's metric leaves with the flush all the same.
    [metric_request] = metrics.requests
    assert [m.name for group in metric_request.resource_metrics for scope in group.scope_metrics
            for m in scope.metrics] == ["orders"]


async def test_a_signal_that_is_not_exported_drops_what_the_function_sent() -> None:
    resource = lambda_resource(service_name="shop", function_name="shop")
    pipeline = Pipeline(SpanAssembler(resource=resource, function_name="shop", ids=Ids()), Buffer[Any](100), None)

    pipeline.forward(the_functions_request())
    pipeline.forward(ExportLogsServiceRequest(resource_logs=[ResourceLogs()]))

    assert pipeline.pending == 0
