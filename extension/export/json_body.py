"""The extension's own spans, log records and metric windows as OTLP/JSON documents (OTEL_EXPORTER_OTLP_PROTOCOL
http/json), written from the data directly. Pure.

OTLP/JSON is proto3's JSON mapping with two exceptions the specification makes: trace and span ids are hex,
and enums are integers. So field names are lowerCamelCase, 64-bit integers are decimal strings, defaults are
left out, and non-finite doubles are the strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

from extension.export.protobuf import CUMULATIVE, DELTA, INT64, SPAN_KINDS, STATUS_CODE_ERROR, span_flags
from extension.telemetry import (
    SCOPE_NAME,
    SCOPE_VERSION,
    Attributes,
    GaugePoint,
    HistogramPoint,
    LogData,
    MetricPoint,
    MetricsWindow,
    Resource,
    Scalar,
    SpanData,
    SumPoint,
    by_resource,
)

Document = dict[str, Any]

_SCOPE: Final[Document] = {"name": SCOPE_NAME, "version": SCOPE_VERSION}
_UINT64: Final = range(1 << 64)


def spans_document(spans: Iterable[SpanData]) -> Document:
    """An ExportTraceServiceRequest."""
    return {"resourceSpans": [
        {"resource": _resource(resource), "scopeSpans": [{"scope": _SCOPE, "spans": [_span(span) for span in group]}]}
        for resource, group in by_resource(spans)
    ]}


def logs_document(records: Iterable[LogData]) -> Document:
    """An ExportLogsServiceRequest."""
    return {"resourceLogs": [
        {"resource": _resource(resource),
         "scopeLogs": [{"scope": _SCOPE, "logRecords": [_log(record) for record in group]}]}
        for resource, group in by_resource(records)
    ]}


def metrics_document(windows: Iterable[MetricsWindow]) -> Document:
    """An ExportMetricsServiceRequest: a resource group per window, as each window is its own collection."""
    return {"resourceMetrics": [
        {"resource": _resource(window.resource),
         "scopeMetrics": [{"scope": _SCOPE, "metrics": [_metric(point, window) for point in window.points]}]}
        for window in windows
    ]}


def _resource(resource: Resource) -> Document:
    return {"attributes": _attributes(resource.attributes)} if resource.attributes else {}


def _attributes(attributes: Attributes) -> list[Document]:
    return [{"key": key, "value": _any_value(value)} for key, value in attributes.items()]


def _any_value(value: Scalar | None) -> Document:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        value.encode()  # a lone surrogate cannot be sent: raise here, as the protobuf encoder does
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": _decimal(value, INT64)}
    return {"doubleValue": _double(value)}


def _decimal(value: int, allowed: range) -> str:
    if value not in allowed:
        raise OverflowError(f"{value} does not fit its 64-bit field")
    return str(value)


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _time(value: int) -> str:
    return _decimal(value, _UINT64)


def _span(span: SpanData) -> Document:
    document: Document = {"traceId": f"{span.trace_id:032x}", "spanId": f"{span.span_id:016x}"}
    if span.parent_span_id is not None:
        document["parentSpanId"] = f"{span.parent_span_id:016x}"
    document |= {"name": span.name, "kind": SPAN_KINDS[span.kind], "startTimeUnixNano": _time(span.start_unix_nano),
                 "endTimeUnixNano": _time(span.end_unix_nano)}
    if span.attributes:
        document["attributes"] = _attributes(span.attributes)
    document["status"] = {} if span.error is None else {"message": span.error, "code": STATUS_CODE_ERROR}
    document["flags"] = span_flags(span)
    return document


def _log(record: LogData) -> Document:
    document: Document = {}
    if record.time_unix_nano:
        document["timeUnixNano"] = _time(record.time_unix_nano)
    if record.severity_number:
        document["severityNumber"] = record.severity_number
    if record.severity_text:
        document["severityText"] = record.severity_text
    document["body"] = _any_value(record.body)
    if record.attributes:
        document["attributes"] = _attributes(record.attributes)
    if record.trace_id and record.span_id:
        if record.sampled:
            document["flags"] = 1
        document |= {"traceId": f"{record.trace_id:032x}", "spanId": f"{record.span_id:016x}"}
    if record.observed_unix_nano:
        document["observedTimeUnixNano"] = _time(record.observed_unix_nano)
    return document


def _metric(point: MetricPoint, window: MetricsWindow) -> Document:
    document: Document = {"name": point.name}
    if point.description:
        document["description"] = point.description
    if point.unit:
        document["unit"] = point.unit
    times = {"startTimeUnixNano": _time(window.start_unix_nano), "timeUnixNano": _time(window.time_unix_nano)}
    temporality = CUMULATIVE if window.cumulative else DELTA
    if isinstance(point, SumPoint):
        document["sum"] = {"dataPoints": [times | _number(point.value)], "aggregationTemporality": temporality}
        if point.monotonic:
            document["sum"]["isMonotonic"] = True
    elif isinstance(point, GaugePoint):
        document["gauge"] = {"dataPoints": [times | _number(point.value)]}
    else:
        document["histogram"] = {"dataPoints": [times | _histogram(point)], "aggregationTemporality": temporality}
    return document


def _number(value: float) -> Document:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"asInt": _decimal(value, INT64)}
    return {"asDouble": _double(value)}


def _histogram(point: HistogramPoint) -> Document:
    document: Document = {"count": _decimal(point.count, _UINT64), "sum": _double(point.sum)}
    if point.counts:
        document["bucketCounts"] = [_decimal(count, _UINT64) for count in point.counts]
    if point.bounds:
        document["explicitBounds"] = [_double(bound) for bound in point.bounds]
    return document | {"min": _double(point.min), "max": _double(point.max)}
