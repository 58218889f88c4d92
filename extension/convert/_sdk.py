"""The only module that constructs OpenTelemetry SDK objects: a firewall against SDK version churn.

Callers hand over plain ints and strings; what comes back (Resource, ReadableSpan, ReadableLogRecord,
MetricsData) feeds the OTLP encoders unchanged. Nothing here reads the environment: Resource.create()
would, so it is not used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final, Literal

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.sdk.version import __version__ as SDK_VERSION
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util.types import AnyValue, AttributeValue

from extension import __version__
from extension.convert.metrics import GaugePoint, MetricPoint, SumPoint

Attributes = Mapping[str, AttributeValue]
Kind = Literal["server", "internal"]

SCOPE_NAME: Final = "lambda-otel-extension"
SDK_ATTRIBUTES: Final[Mapping[str, str]] = {
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.version": SDK_VERSION,
    "telemetry.distro.name": SCOPE_NAME,
    "telemetry.distro.version": __version__,
}
_SCOPE: Final = InstrumentationScope(SCOPE_NAME, __version__)
_KINDS: Final[Mapping[Kind, SpanKind]] = {"server": SpanKind.SERVER, "internal": SpanKind.INTERNAL}
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)


class _Resource(Resource):
    """A Resource whose hash is computed once: the OTLP encoder groups spans by resource and hashes it for
    every span, and the SDK's hash serialises all attributes to JSON each time."""

    def __init__(self, attributes: Attributes) -> None:
        super().__init__(attributes)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def make_resource(attributes: Attributes) -> Resource:
    return _Resource(attributes)


def resource_attributes(resource: Resource) -> Attributes:
    return resource.attributes


def make_span(
    *,
    name: str,
    kind: Kind,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    parent_is_remote: bool,
    start_unix_nano: int,
    end_unix_nano: int,
    attributes: Attributes,
    error: str | None,
    resource: Resource,
) -> ReadableSpan:
    """A finished, sampled span; `error` set means status ERROR with that description, else UNSET."""
    parent = None
    if parent_span_id is not None:
        parent = SpanContext(trace_id, parent_span_id, is_remote=parent_is_remote, trace_flags=_SAMPLED)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=dict(attributes),
        kind=_KINDS[kind],
        status=Status(StatusCode.UNSET) if error is None else Status(StatusCode.ERROR, error),
        start_time=start_unix_nano,
        end_time=end_unix_nano,
        instrumentation_scope=_SCOPE,
    )


def make_log_record(
    *,
    time_unix_nano: int,
    observed_unix_nano: int,
    trace_id: int | None,
    span_id: int | None,
    sampled: bool,
    severity_number: int,
    severity_text: str | None,
    body: AnyValue,
    attributes: Attributes,
    resource: Resource,
) -> ReadableLogRecord:
    """A log record, in the trace of (trace_id, span_id) when both are given; severity_number is the log
    data model's 0 (unspecified) to 24."""
    return ReadableLogRecord(
        log_record=LogRecord(
            timestamp=time_unix_nano,
            observed_timestamp=observed_unix_nano,
            context=_log_context(trace_id, span_id, sampled) if trace_id and span_id else _NO_TRACE,
            severity_number=SeverityNumber(severity_number) if severity_number else None,
            severity_text=severity_text,
            body=body,
            attributes=dict(attributes),
        ),
        resource=resource,
        instrumentation_scope=_SCOPE,
    )


# LogRecord reads its trace ids from a context, and falls back to the ambient one when given none (or an
# empty one): hand it an explicit one every time, so nothing depends on whatever span is current.
_NO_TRACE: Final = set_span_in_context(INVALID_SPAN, Context())


@lru_cache(maxsize=256)  # one invocation's lines share it; bounded like every other per-request state
def _log_context(trace_id: int, span_id: int, sampled: bool) -> Context:
    flags = _SAMPLED if sampled else TraceFlags(TraceFlags.DEFAULT)
    return set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)),
                               Context())


def random_ids() -> RandomIdGenerator:
    """The SDK's generator of random trace and span ids (it fits convert.builders.IdGenerator)."""
    return RandomIdGenerator()


def make_metrics_data(resource: Resource, points: Sequence[MetricPoint], *, cumulative: bool,
                      start_unix_nano: int, time_unix_nano: int) -> MetricsData:
    """One export's worth of metrics; sums and histograms carry the window [start, time]."""
    temporality = AggregationTemporality.CUMULATIVE if cumulative else AggregationTemporality.DELTA
    metrics = [_metric(point, temporality, start_unix_nano, time_unix_nano) for point in points]
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource, scope_metrics=[ScopeMetrics(scope=_SCOPE, metrics=metrics, schema_url="")],
        schema_url="")])


def _metric(point: MetricPoint, temporality: AggregationTemporality, start: int, now: int) -> Metric:
    data: Sum | Gauge | Histogram
    if isinstance(point, SumPoint):
        data = Sum(data_points=[NumberDataPoint(attributes=None, start_time_unix_nano=start, time_unix_nano=now,
                                                value=point.value)],
                   aggregation_temporality=temporality, is_monotonic=point.monotonic)
    elif isinstance(point, GaugePoint):
        data = Gauge(data_points=[NumberDataPoint(attributes=None, start_time_unix_nano=start, time_unix_nano=now,
                                                  value=point.value)])
    else:
        data = Histogram(data_points=[HistogramDataPoint(
            attributes=None, start_time_unix_nano=start, time_unix_nano=now, count=point.count, sum=point.sum,
            bucket_counts=list(point.counts), explicit_bounds=list(point.bounds), min=point.min, max=point.max)],
            aggregation_temporality=temporality)
    return Metric(name=point.name, description=point.description, unit=point.unit, data=data)
