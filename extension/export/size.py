"""Cheap estimates of what a span or a log record adds to an OTLP request, for the buffers' byte bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from extension.forwarded import Forwarded
from extension.telemetry import Attributes, LogData, Scalar, SpanData

if TYPE_CHECKING:
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

# Trace id (16), span id and parent id (8 each), two fixed64 times, kind, flags, status, and the field tags.
SPAN_OVERHEAD_BYTES: Final = 64
# Two fixed64 times, trace id (16) and span id (8), flags, severity number, the body's AnyValue, and the tags.
LOG_OVERHEAD_BYTES: Final = 56
# The KeyValue and AnyValue wrappers around each attribute: tags and length prefixes.
ATTRIBUTE_OVERHEAD_BYTES: Final = 6
_NUMBER_BYTES: Final = 9


def estimate_span_bytes(span: SpanData | Forwarded[Span]) -> int:
    """About what `span` adds to an uncompressed OTLP protobuf request, without encoding it.

    Strings count one byte per character (exact for ASCII, low for other text); the resource is left out, as a
    request carries it once for all its spans. Within a factor of two of the encoded size. A span the function
    sent to the receiver is already encoded and knows its size.
    """
    if isinstance(span, Forwarded):
        return span.size_bytes
    return SPAN_OVERHEAD_BYTES + len(span.name) + len(span.error or "") + _attributes_bytes(span.attributes)


def estimate_log_bytes(record: LogData | Forwarded[LogRecord]) -> int:
    """estimate_span_bytes for a log record."""
    if isinstance(record, Forwarded):
        return record.size_bytes
    return (LOG_OVERHEAD_BYTES + len(record.severity_text or "") + _value_bytes(record.body)
            + _attributes_bytes(record.attributes))


def _attributes_bytes(attributes: Attributes) -> int:
    return sum(ATTRIBUTE_OVERHEAD_BYTES + len(key) + _value_bytes(value) for key, value in attributes.items())


def _value_bytes(value: Scalar | None) -> int:
    return len(value) if isinstance(value, str) else _NUMBER_BYTES  # bool, int, float (None takes a little less)
