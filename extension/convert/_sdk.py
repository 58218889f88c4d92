"""The only module that constructs OpenTelemetry SDK objects: a firewall against SDK version churn.

Callers hand over plain ints and strings; what comes back (Resource, ReadableSpan) feeds the OTLP
encoders unchanged. Nothing here reads the environment: Resource.create() would, so it is not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.sdk.version import __version__ as SDK_VERSION
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from extension import __version__

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


def random_ids() -> RandomIdGenerator:
    """The SDK's generator of random trace and span ids (it fits convert.builders.IdGenerator)."""
    return RandomIdGenerator()
