"""The OTLP encoders (export.protobuf, export.json_body) against opentelemetry-proto's own messages."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from extension import __version__
from extension.export import json_body, otlp_json, protobuf
from extension.telemetry import (
    GaugePoint,
    HistogramPoint,
    LogData,
    MetricsWindow,
    Resource,
    Scalar,
    SpanData,
    SumPoint,
)

RESOURCE = Resource({"service.name": "shop", "faas.max_memory": 134_217_728})
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.one_of(st.text(), st.booleans(), INT64, st.floats(allow_nan=False))


def span(**changes: object) -> SpanData:
    fields: dict[str, object] = {
        "name": "shop", "kind": "server", "trace_id": 0x5759E988BD862E3FE1BE46A994272793, "span_id": 0x1111,
        "parent_span_id": 0x53995C3F42CD8AD8, "parent_is_remote": True, "start_unix_nano": 1_736_208_000_000_000_000,
        "end_unix_nano": 1_736_208_000_120_000_000, "attributes": {"faas.coldstart": True}, "error": None,
        "resource": RESOURCE,
    }
    fields.update(changes)
    return SpanData(**fields)  # type: ignore[arg-type]


def log(**changes: object) -> LogData:
    fields: dict[str, object] = {
        "time_unix_nano": 1_736_208_000_000_000_001, "observed_unix_nano": 1_736_208_000_000_000_002,
        "trace_id": 0xABC, "span_id": 0xDEF, "sampled": True, "severity_number": 9, "severity_text": "INFO",
        "body": "hello", "attributes": {"faas.invocation_id": "r1"}, "resource": RESOURCE,
    }
    fields.update(changes)
    return LogData(**fields)  # type: ignore[arg-type]


def window(cumulative: bool = False) -> MetricsWindow:
    return MetricsWindow(resource=RESOURCE, cumulative=cumulative, start_unix_nano=10, time_unix_nano=20, points=[
        SumPoint(name="faas.invocations", unit="{invocation}", description="Invocations", value=3),
        SumPoint(name="queue", unit="", description="", value=-1.5, monotonic=False),
        GaugePoint(name="lambda_extension.buffer.fill", unit="1", description="Fill", value=0.25),
        HistogramPoint(name="faas.invoke_duration", unit="s", description="Duration", bounds=(0.1, 1.0),
                       counts=(1, 0, 2), count=3, sum=4.5, min=0.05, max=2.5),
    ])


def test_spans_are_written_as_protobuf_serialises_them() -> None:
    """Field order and left-out defaults included: re-serialising what we wrote gives the same bytes."""
    spans = [span(), span(span_id=0x2222, parent_span_id=0x1111, parent_is_remote=False, kind="internal",
                          name="report", error="Runtime.ExitError", attributes={"n": -5, "f": 0.5, "s": "ü"}),
             span(span_id=0x3333, parent_span_id=None, attributes={})]
    body = protobuf.encode_spans(spans)
    request = ExportTraceServiceRequest.FromString(body)

    assert request.SerializeToString() == body
    [group] = request.resource_spans
    assert {kv.key: kv.value for kv in group.resource.attributes} == {
        "service.name": AnyValue(string_value="shop"), "faas.max_memory": AnyValue(int_value=134_217_728)}
    [scope] = group.scope_spans
    assert (scope.scope.name, scope.scope.version) == ("lambda-otel-extension", __version__)
    root, child, orphan = scope.spans
    assert root.parent_span_id == (0x53995C3F42CD8AD8).to_bytes(8, "big") and root.flags == 0x300
    assert (root.kind, root.status.code, root.HasField("status")) == (2, 0, True)
    assert (child.kind, child.status.code, child.status.message, child.flags) == (1, 2, "Runtime.ExitError", 0x100)
    assert [(kv.key, kv.value) for kv in child.attributes] == [
        ("n", AnyValue(int_value=-5)), ("f", AnyValue(double_value=0.5)), ("s", AnyValue(string_value="ü"))]
    assert (orphan.parent_span_id, orphan.flags, list(orphan.attributes)) == (b"", 0x100, [])


def test_items_are_grouped_by_the_resource_they_were_made_with() -> None:
    later = Resource({**RESOURCE.attributes, "faas.instance": "2024/05/20/[$LATEST]abc"})
    request = ExportTraceServiceRequest.FromString(protobuf.encode_spans([span(), span(resource=later), span()]))

    assert [len(group.scope_spans[0].spans) for group in request.resource_spans] == [2, 1]
    assert protobuf.encode_spans([]) == b""


def test_log_records_with_and_without_a_trace() -> None:
    records = [log(), log(trace_id=None, span_id=None, severity_number=0, severity_text=None, body=None,
                          attributes={}, time_unix_nano=0),
               log(sampled=False, body=7)]
    body = protobuf.encode_logs(records)
    request = ExportLogsServiceRequest.FromString(body)

    assert request.SerializeToString() == body
    traced, bare, unsampled = request.resource_logs[0].scope_logs[0].log_records
    assert traced == LogRecord(
        time_unix_nano=1_736_208_000_000_000_001, observed_time_unix_nano=1_736_208_000_000_000_002,
        severity_number=9, severity_text="INFO", body=AnyValue(string_value="hello"),
        attributes=[KeyValue(key="faas.invocation_id", value=AnyValue(string_value="r1"))], flags=1,
        trace_id=(0xABC).to_bytes(16, "big"), span_id=(0xDEF).to_bytes(8, "big"))
    assert bare.HasField("body") and bare.body == AnyValue() and (bare.trace_id, bare.flags) == (b"", 0)
    assert (unsampled.flags, unsampled.body.int_value, len(unsampled.trace_id)) == (0, 7, 16)


@pytest.mark.parametrize("cumulative", [False, True])
def test_metric_windows(cumulative: bool) -> None:
    body = protobuf.encode_metrics([window(cumulative)])
    request = ExportMetricsServiceRequest.FromString(body)

    assert request.SerializeToString() == body
    invocations, queue, fill, duration = request.resource_metrics[0].scope_metrics[0].metrics
    temporality = (AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE if cumulative
                   else AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA)
    assert (invocations.name, invocations.unit, invocations.description) == (
        "faas.invocations", "{invocation}", "Invocations")
    assert invocations.sum.is_monotonic and invocations.sum.aggregation_temporality == temporality
    [point] = invocations.sum.data_points
    assert (point.as_int, point.start_time_unix_nano, point.time_unix_nano) == (3, 10, 20)
    assert not queue.sum.is_monotonic and queue.sum.data_points[0].as_double == -1.5
    assert fill.gauge.data_points[0].as_double == 0.25
    [histogram] = duration.histogram.data_points
    assert (list(histogram.bucket_counts), list(histogram.explicit_bounds)) == ([1, 0, 2], [0.1, 1.0])
    assert (histogram.count, histogram.sum, histogram.min, histogram.max) == (3, 4.5, 0.05, 2.5)
    assert duration.histogram.aggregation_temporality == temporality


def test_json_documents_say_what_the_protobuf_says() -> None:
    """Read back with protobuf's own JSON parser (hex ids turned back into base64 on the way)."""
    spans = [span(), span(span_id=2, parent_span_id=None, error="timeout", attributes={"n": 2**63 - 1})]
    records = [log(), log(trace_id=None, span_id=None, body=None, time_unix_nano=0)]
    cases: list[tuple[dict[str, Any], bytes, Any]] = [
        (json_body.spans_document(spans), protobuf.encode_spans(spans), ExportTraceServiceRequest),
        (json_body.logs_document(records), protobuf.encode_logs(records), ExportLogsServiceRequest),
        (json_body.metrics_document([window()]), protobuf.encode_metrics([window()]), ExportMetricsServiceRequest),
    ]
    for document, body, message in cases:
        assert otlp_json.from_document(orjson.loads(orjson.dumps(document)), message()) == message.FromString(body)
    assert json_body.spans_document(spans)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == (
        "5759e988bd862e3fe1be46a994272793")


@given(attributes=st.dictionaries(st.text(), SCALARS, max_size=5), body=st.one_of(st.none(), SCALARS))
def test_any_scalar_round_trips(attributes: dict[str, Scalar], body: Scalar | None) -> None:
    record = log(attributes=attributes, body=body)
    [decoded] = ExportLogsServiceRequest.FromString(protobuf.encode_logs([record])).resource_logs[0].scope_logs[0] \
        .log_records

    assert [kv.key for kv in decoded.attributes] == list(attributes)
    for kv, value in zip(decoded.attributes, attributes.values(), strict=True):
        assert getattr(kv.value, kv.value.WhichOneof("value")) == value
    assert (decoded.body.WhichOneof("value") is None) == (body is None)


def test_non_finite_doubles() -> None:
    record = log(attributes={"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    [decoded] = ExportLogsServiceRequest.FromString(protobuf.encode_logs([record])).resource_logs[0].scope_logs[0] \
        .log_records
    values = [kv.value.double_value for kv in decoded.attributes]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]

    document = json_body.logs_document([record])
    kvs = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
    assert [kv["value"]["doubleValue"] for kv in kvs] == ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("bad", [
    {"start_unix_nano": -1},
    {"end_unix_nano": 2**64},
    {"attributes": {"n": 2**63}},
    {"attributes": {"s": "\ud800"}},
])
def test_what_otlp_cannot_hold_raises_in_both_encoders(bad: dict[str, object]) -> None:
    item = span(**bad)
    with pytest.raises((ValueError, OverflowError)):
        protobuf.encode_spans([item])
    with pytest.raises((ValueError, OverflowError)):
        json_body.spans_document([item])


def test_partial_success_of_any_signal() -> None:
    traces = ExportTraceServiceResponse(partial_success=ExportTracePartialSuccess(rejected_spans=3,
                                                                                  error_message="too old"))
    logs = ExportLogsServiceResponse(partial_success=ExportLogsPartialSuccess(rejected_log_records=2))

    assert protobuf.read_partial_success(traces.SerializeToString()) == (3, "too old")
    assert protobuf.read_partial_success(logs.SerializeToString()) == (2, None)
    assert protobuf.read_partial_success(b"") == (0, None)
    with pytest.raises(ValueError):
        protobuf.read_partial_success(b"\x0a\x05\x08")  # a length beyond the body


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varints_read_back(value: int) -> None:
    encoded = protobuf.tag(1, 0) + protobuf.varint(value)
    assert protobuf.read_partial_success(protobuf.length_delimited(protobuf.tag(1, 2), encoded))[0] == (
        value - 2**64 if value >= 2**63 else value)
