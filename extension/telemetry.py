"""What the extension exports, as plain data: the resource, finished spans, log records and metric windows.

Built by the converters (extension.convert) and read by the OTLP encoders (extension.export.protobuf and
.json_body), with no OpenTelemetry SDK in between: the SDK's objects cost imports at every cold start, and memory
and CPU for every buffered span, for nothing the extension uses of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from extension import __version__

Scalar = str | bool | int | float
Attributes = Mapping[str, Scalar]
Kind = Literal["server", "internal"]

SCOPE_NAME: Final = "lambda-otel-extension"
SCOPE_VERSION: Final = __version__
# The resource's telemetry.sdk.*: a backend reads them to tell which library made the data.
SDK_ATTRIBUTES: Final[Mapping[str, str]] = {
    "telemetry.sdk.name": SCOPE_NAME,
    "telemetry.sdk.language": "python",
    "telemetry.sdk.version": __version__,
}


@dataclass(frozen=True, slots=True, eq=False)
class Resource:
    """The entity the telemetry is about. Compared by identity: the encoders group items by the resource object
    they were made with, and the extension makes only a few (faas.instance joins once initStart tells it)."""

    attributes: Attributes


# SpanData and LogData are made per event, so they are not frozen: a frozen dataclass sets each field through
# object.__setattr__, three times the cost of a plain one (1.7 us more per span here). Nothing changes them.
@dataclass(slots=True, kw_only=True)
class SpanData:
    """A finished, sampled span; `error` set means status ERROR with that description, else UNSET."""

    name: str
    kind: Kind
    trace_id: int
    span_id: int
    parent_span_id: int | None
    parent_is_remote: bool
    start_unix_nano: int
    end_unix_nano: int
    attributes: Attributes
    error: str | None
    resource: Resource


@dataclass(slots=True, kw_only=True)
class LogData:
    """A log record, in the trace of (trace_id, span_id) when both are given; severity_number is the log data
    model's 0 (unspecified) to 24."""

    time_unix_nano: int
    observed_unix_nano: int
    trace_id: int | None
    span_id: int | None
    sampled: bool
    severity_number: int
    severity_text: str | None
    body: Scalar | None
    attributes: Attributes
    resource: Resource


@dataclass(frozen=True, slots=True, kw_only=True)
class SumPoint:
    name: str
    unit: str
    description: str
    value: float
    monotonic: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class GaugePoint:
    name: str
    unit: str
    description: str
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramPoint:
    name: str
    unit: str
    description: str
    bounds: Sequence[float]
    counts: Sequence[int]
    count: int
    sum: float
    min: float
    max: float


MetricPoint = SumPoint | GaugePoint | HistogramPoint


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsWindow:
    """One collection's metric points; sums and histograms cover [start_unix_nano, time_unix_nano]."""

    resource: Resource
    points: Sequence[MetricPoint]
    cumulative: bool
    start_unix_nano: int
    time_unix_nano: int


Made = TypeVar("Made", "SpanData", "LogData")


def by_resource(items: Iterable[Made]) -> list[tuple[Resource, list[Made]]]:
    """Items grouped by the resource they were made with, groups in the order they first appear."""
    groups: dict[Resource, list[Made]] = {}
    for item in items:
        groups.setdefault(item.resource, []).append(item)
    return list(groups.items())
