"""What the function sends to the receiver: split into items with their own messages, merged back into one
request with the extension's own spans, grouped by resource and scope."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from extension import forwarded
from extension.export.otlp import LOGS, METRICS, TRACES
from extension.export.size import estimate_log_bytes, estimate_span_bytes
from extension.telemetry import Resource as OurResource
from extension.telemetry import SpanData


def resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def trace_request(service: str, scopes: dict[str, list[str]]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource(service), schema_url="https://opentelemetry.io/schemas/1.21.0",
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope, version="1"),
                                spans=[Span(name=name, trace_id=bytes(16), span_id=bytes([n + 1]) * 8)
                                       for n, name in enumerate(names)])
                     for scope, names in scopes.items()])])


def test_each_item_holds_its_own_copy_and_its_size() -> None:
    request = trace_request("fn", {"app": ["a", "b"], "http": ["c"]})

    items = forwarded.split(request, forwarded.TRACES)
    request.resource_spans[0].scope_spans[0].spans[0].name = "changed"

    assert [item.message.name for item in items] == ["a", "b", "c"]
    assert [item.origin.scope.name for item in items] == ["app", "app", "http"]
    assert items[0].origin is items[1].origin and items[0].origin.resource is items[2].origin.resource
    assert all(item.size_bytes == item.message.ByteSize() > 0 for item in items)
    assert estimate_span_bytes(items[0]) == items[0].size_bytes


def test_items_of_several_requests_merge_into_one_group_per_resource_and_scope() -> None:
    first = forwarded.split(trace_request("fn", {"app": ["a"], "http": ["b"]}), forwarded.TRACES)
    second = forwarded.split(trace_request("fn", {"app": ["c"]}), forwarded.TRACES)
    other = forwarded.split(trace_request("other", {"app": ["d"]}), forwarded.TRACES)

    merged = ExportTraceServiceRequest()
    forwarded.merge(merged, [*first, *second, *other], forwarded.TRACES)

    assert [(group.resource, [(scope.scope.name, [s.name for s in scope.spans]) for scope in group.scope_spans])
            for group in merged.resource_spans] == [
        (resource("fn"), [("app", ["a", "c"]), ("http", ["b"])]),
        (resource("other"), [("app", ["d"])]),
    ]
    assert merged.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.21.0"


def test_one_request_carries_the_extensions_spans_and_the_functions() -> None:
    ours = SpanData(name="shop", kind="server", trace_id=7, span_id=8, parent_span_id=None, parent_is_remote=False,
                     start_unix_nano=1, end_unix_nano=2, attributes={}, error=None,
                     resource=OurResource({"service.name": "shop"}))
    theirs = forwarded.split(trace_request("fn", {"app": ["handler"]}), forwarded.TRACES)

    request = ExportTraceServiceRequest.FromString(TRACES.encode([ours, *theirs], "http/protobuf"))

    assert [[span.name for scope in group.scope_spans for span in scope.spans]
            for group in request.resource_spans] == [["shop"], ["handler"]]


def test_log_records_and_metrics_go_the_same_way() -> None:
    logs = ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource("fn"), scope_logs=[ScopeLogs(
        scope=InstrumentationScope(name="app"), log_records=[LogRecord(body=AnyValue(string_value="hi"))])])])
    metrics = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(resource=resource("fn"), scope_metrics=[
        ScopeMetrics(scope=InstrumentationScope(name="app"), metrics=[Metric(name="orders")])])])

    records = forwarded.split(logs, forwarded.LOGS)
    points = forwarded.split(metrics, forwarded.METRICS)

    assert estimate_log_bytes(records[0]) == records[0].size_bytes
    assert ExportLogsServiceRequest.FromString(LOGS.encode(records, "http/protobuf")) == logs
    assert ExportMetricsServiceRequest.FromString(METRICS.encode(points, "http/protobuf")) == metrics
