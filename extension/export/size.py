"""A cheap estimate of a span's size in an OTLP request, for the buffer's byte bound."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan

from extension.forwarded import Forwarded

# Trace id (16), span id and parent id (8 each), two fixed64 times, kind, flags, status, and the field tags.
SPAN_OVERHEAD_BYTES: Final = 64
# The KeyValue and AnyValue wrappers around each attribute: tags and length prefixes.
ATTRIBUTE_OVERHEAD_BYTES: Final = 6
_EVENT_OVERHEAD_BYTES: Final = 16
_LINK_OVERHEAD_BYTES: Final = 36
_NUMBER_BYTES: Final = 9


def estimate_span_bytes(span: ReadableSpan | Forwarded[Span]) -> int:
    """About what `span` adds to an uncompressed OTLP protobuf request, without encoding it.

    Strings count one byte per character (exact for ASCII, low for other text); the resource is left
    out, as a request carries it once for all its spans. Within a factor of two of the encoded size for
    the spans this extension makes, at a few microseconds each. A span the function sent to the receiver is
    already encoded and knows its size.
    """
    if isinstance(span, Forwarded):
        return span.size_bytes
    size = SPAN_OVERHEAD_BYTES + len(span.name) + len(span.status.description or "")
    size += _attributes_bytes(span.attributes)
    for event in span.events:
        size += _EVENT_OVERHEAD_BYTES + len(event.name) + _attributes_bytes(event.attributes)
    for link in span.links:
        size += _LINK_OVERHEAD_BYTES + _attributes_bytes(link.attributes)
    return size


def _attributes_bytes(attributes: Mapping[str, object] | None) -> int:
    if not attributes:
        return 0
    return sum(ATTRIBUTE_OVERHEAD_BYTES + len(key) + _value_bytes(value) for key, value in attributes.items())


def _value_bytes(value: object) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Mapping):
        return _attributes_bytes(value)
    if isinstance(value, Iterable):  # each item of a sequence is an AnyValue of its own
        return sum(2 + _value_bytes(item) for item in value)
    return _NUMBER_BYTES  # bool, int, float (None takes a little less)
