"""What the function sent to the in-function receiver, one span, log record or metric at a time.

An export request is split into items that each hold their own copy of the message, so the buffers count,
bound and drop them exactly as they do the extension's own spans and log records, and a request can be freed
as soon as it is split (a sub-message would keep its whole request alive). Each item keeps a reference to its
origin, the resource and scope it was sent under, shared by the items of one request; `merge` puts items back
together into the next export request, one group per distinct resource and scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from google.protobuf.message import Message  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """Where one signal's items sit in its export request: request.<resources>[].<scopes>[].<items>[]."""

    request: type[Message]
    resources: str
    document_key: str  # `resources` in OTLP/JSON
    scopes: str
    items: str
    item: type[Message]


TRACES: Final = Shape(request=ExportTraceServiceRequest, resources="resource_spans", document_key="resourceSpans",
                      scopes="scope_spans", items="spans", item=Span)
LOGS: Final = Shape(request=ExportLogsServiceRequest, resources="resource_logs", document_key="resourceLogs",
                    scopes="scope_logs", items="log_records", item=LogRecord)
METRICS: Final = Shape(request=ExportMetricsServiceRequest, resources="resource_metrics",
                       document_key="resourceMetrics", scopes="scope_metrics", items="metrics", item=Metric)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Origin:
    """The resource and scope some forwarded items were sent under; the keys tell equal ones apart."""

    resource: Resource
    resource_schema_url: str
    scope: InstrumentationScope
    scope_schema_url: str
    resource_key: tuple[bytes, str]
    scope_key: tuple[bytes, str]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Forwarded(Generic[M]):
    """One span, log record or metric as the function sent it; `message` may be re-parented in place."""

    origin: Origin
    message: M
    size_bytes: int  # the message's encoded size, for the buffers' byte bound


def split(request: Message, shape: Shape) -> list[Forwarded[Any]]:
    """Every item of an export request, each with its own copy of its message, in request order."""
    found: list[Forwarded[Any]] = []
    for resource_group in getattr(request, shape.resources):
        resource = Resource()
        resource.CopyFrom(resource_group.resource)
        resource_key = (resource.SerializeToString(deterministic=True), resource_group.schema_url)
        for scope_group in getattr(resource_group, shape.scopes):
            scope = InstrumentationScope()
            scope.CopyFrom(scope_group.scope)
            origin = Origin(resource=resource, resource_schema_url=resource_group.schema_url, scope=scope,
                            scope_schema_url=scope_group.schema_url, resource_key=resource_key,
                            scope_key=(scope.SerializeToString(deterministic=True), scope_group.schema_url))
            for item in getattr(scope_group, shape.items):
                own = shape.item()
                own.CopyFrom(item)
                found.append(Forwarded(origin=origin, message=own, size_bytes=own.ByteSize()))
    return found


def merge(request: Message, items: Iterable[Forwarded[Any]], shape: Shape) -> None:
    """Append `items` to `request`, grouped by resource, then by scope, in the order they first appear."""
    groups: dict[tuple[bytes, str], tuple[Origin, dict[tuple[bytes, str], tuple[Origin, list[Message]]]]] = {}
    for item in items:
        origin = item.origin
        _, scopes = groups.setdefault(origin.resource_key, (origin, {}))
        scopes.setdefault(origin.scope_key, (origin, []))[1].append(item.message)
    for resource_origin, scopes in groups.values():
        resource_group = getattr(request, shape.resources).add()
        resource_group.resource.CopyFrom(resource_origin.resource)
        resource_group.schema_url = resource_origin.resource_schema_url
        for scope_origin, messages in scopes.values():
            scope_group = getattr(resource_group, shape.scopes).add()
            scope_group.scope.CopyFrom(scope_origin.scope)
            scope_group.schema_url = scope_origin.scope_schema_url
            getattr(scope_group, shape.items).extend(messages)
