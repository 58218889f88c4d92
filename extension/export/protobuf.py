"""The extension's own spans, log records and metric windows as OTLP protobuf bytes, written field by field.

Pure. The OTLP messages this writes are few and fixed (opentelemetry-proto's trace, logs, metrics, common and
resource .proto files, v1), so writing their wire format directly costs a fraction of building protobuf
objects first, and needs neither the SDK nor the protobuf runtime in the extension's cold start. Fields go out
in field-number order with proto3's defaults left out, as protobuf's own serializer writes them; a test checks
the bytes against opentelemetry-proto's messages.

Values OTLP cannot hold raise ValueError or OverflowError: a time outside fixed64, an integer outside int64, text
that is not valid Unicode. The exporter leaves such items out and sends the rest.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

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

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_SMALL: Final = tuple(bytes((n,)) for n in range(0x80))
_U64: Final = 1 << 64
INT64: Final = range(-(1 << 63), 1 << 63)
_pack_u64: Final = struct.Struct("<Q").pack
_pack_f64: Final = struct.Struct("<d").pack
_pack_u32: Final = struct.Struct("<I").pack

# The .proto files' enum values, which OTLP/JSON writes as numbers too (json_body uses these): Span.SpanKind and
# Status.StatusCode of trace.proto, AggregationTemporality of metrics.proto.
SPAN_KINDS: Final = {"internal": 1, "server": 2}
STATUS_CODE_ERROR: Final = 2
DELTA, CUMULATIVE = 1, 2
_FLAGS_HAS_IS_REMOTE: Final = 0x100  # SpanFlags
_FLAGS_IS_REMOTE: Final = 0x200
# Attribute encodings are memoised: most keys and many values repeat from span to span (status, cold start,
# phase names); the memo is emptied when full rather than tracked per entry.
_MAX_MEMO: Final = 4096


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field_tag: bytes, payload: bytes) -> bytes:
    return field_tag + varint(len(payload)) + payload


def _string(field_tag: bytes, text: str) -> bytes:
    return length_delimited(field_tag, text.encode())  # strict UTF-8: a lone surrogate raises ValueError


def _fixed64(field_tag: bytes, value: int) -> bytes:
    return field_tag + _pack_u64(value)


def _int64(value: int) -> bytes:
    if value not in INT64:
        raise OverflowError(f"{value} does not fit an int64")
    return varint(value % _U64)  # negative values take ten bytes, as two's complement


# Tags by message, named <message>_<field>.
_REQUEST_GROUPS: Final = tag(1, _LEN)  # Export*ServiceRequest.resource_spans / resource_logs / resource_metrics
_GROUP_RESOURCE, _GROUP_SCOPES = tag(1, _LEN), tag(2, _LEN)  # Resource* and Scope* groups alike
_SCOPE_GROUP_SCOPE, _SCOPE_GROUP_ITEMS = tag(1, _LEN), tag(2, _LEN)
_RESOURCE_ATTRIBUTES: Final = tag(1, _LEN)
_SCOPE_NAME, _SCOPE_VERSION = tag(1, _LEN), tag(2, _LEN)
_KV_KEY, _KV_VALUE = tag(1, _LEN), tag(2, _LEN)
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE = tag(1, _LEN), tag(2, _VARINT), tag(3, _VARINT), tag(4, _FIXED64)
_SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_PARENT_ID = tag(1, _LEN), tag(2, _LEN), tag(4, _LEN)
_SPAN_NAME, _SPAN_KIND = tag(5, _LEN), tag(6, _VARINT)
_SPAN_ATTRIBUTES, _SPAN_STATUS, _SPAN_FLAGS = tag(9, _LEN), tag(15, _LEN), tag(16, _FIXED32)
_STATUS_MESSAGE, _STATUS_CODE = tag(2, _LEN), tag(3, _VARINT)
_LOG_TIME, _LOG_SEVERITY_NUMBER, _LOG_SEVERITY_TEXT = tag(1, _FIXED64), tag(2, _VARINT), tag(3, _LEN)
_LOG_BODY, _LOG_ATTRIBUTES, _LOG_FLAGS = tag(5, _LEN), tag(6, _LEN), tag(8, _FIXED32)
_LOG_TRACE_ID, _LOG_SPAN_ID, _LOG_OBSERVED = tag(9, _LEN), tag(10, _LEN), tag(11, _FIXED64)
_METRIC_NAME, _METRIC_DESCRIPTION, _METRIC_UNIT = tag(1, _LEN), tag(2, _LEN), tag(3, _LEN)
_METRIC_GAUGE, _METRIC_SUM, _METRIC_HISTOGRAM = tag(5, _LEN), tag(7, _LEN), tag(9, _LEN)
_DATA_POINTS, _TEMPORALITY, _MONOTONIC = tag(1, _LEN), tag(2, _VARINT), tag(3, _VARINT)
_POINT_START, _POINT_TIME = tag(2, _FIXED64), tag(3, _FIXED64)
_NUMBER_DOUBLE, _NUMBER_INT = tag(4, _FIXED64), tag(6, _FIXED64)
_HISTOGRAM_COUNT, _HISTOGRAM_SUM = tag(4, _FIXED64), tag(5, _FIXED64)
_HISTOGRAM_BUCKETS, _HISTOGRAM_BOUNDS = tag(6, _LEN), tag(7, _LEN)
_HISTOGRAM_MIN, _HISTOGRAM_MAX = tag(11, _FIXED64), tag(12, _FIXED64)
_UNSET_STATUS: Final = length_delimited(_SPAN_STATUS, b"")  # the SDK always sent a status; so do we


def any_value(value: Scalar | None) -> bytes:
    """An AnyValue's fields; None is the empty AnyValue."""
    if value is None:
        return b""
    if value is True or value is False:  # before int: a bool is an int
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _string(_ANY_STRING, value)
    if isinstance(value, int):
        return _ANY_INT + _int64(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_f64(value)
    raise TypeError(f"an attribute value cannot be a {type(value).__name__}")


_memo: dict[tuple[bytes, str, type, Scalar], bytes] = {}


def attribute(field_tag: bytes, key: str, value: Scalar) -> bytes:
    """One attributes field: the tag, then the KeyValue."""
    memo_key = (field_tag, key, type(value), value)  # the type too: True, 1 and 1.0 are equal keys
    encoded = _memo.get(memo_key)
    if encoded is None:
        encoded = length_delimited(field_tag, _string(_KV_KEY, key) + length_delimited(_KV_VALUE, any_value(value)))
        if len(_memo) >= _MAX_MEMO:
            _memo.clear()
        _memo[memo_key] = encoded
    return encoded


def attributes(field_tag: bytes, values: Attributes) -> bytes:
    return b"".join([attribute(field_tag, key, value) for key, value in values.items()])


@lru_cache(maxsize=16)  # Resource compares by identity, and there are a few per extension
def _resource(resource: Resource) -> bytes:
    return length_delimited(_GROUP_RESOURCE, attributes(_RESOURCE_ATTRIBUTES, resource.attributes))


_SCOPE: Final = length_delimited(_SCOPE_GROUP_SCOPE,
                                 _string(_SCOPE_NAME, SCOPE_NAME) + _string(_SCOPE_VERSION, SCOPE_VERSION))


def _request(groups: Iterable[tuple[Resource, Iterable[bytes]]]) -> bytes:
    """An Export*ServiceRequest of items encoded on the way (generators): one resource group each, all under our
    scope. A struct.error (a time or count outside its fixed64) becomes the ValueError every other bad value
    raises."""
    out = []
    try:
        for resource, encoded in groups:
            scope_group = _SCOPE + b"".join([_SCOPE_GROUP_ITEMS + varint(len(item)) + item for item in encoded])
            out.append(length_delimited(_REQUEST_GROUPS,
                                        _resource(resource) + length_delimited(_GROUP_SCOPES, scope_group)))
    except struct.error as exc:
        raise ValueError(str(exc)) from exc
    return b"".join(out)


def encode_spans(spans: Iterable[SpanData]) -> bytes:
    """An ExportTraceServiceRequest."""
    return _request((resource, (span_bytes(span) for span in group)) for resource, group in by_resource(spans))


def encode_logs(records: Iterable[LogData]) -> bytes:
    """An ExportLogsServiceRequest."""
    return _request((resource, (log_bytes(record) for record in group)) for resource, group in by_resource(records))


def encode_metrics(windows: Iterable[MetricsWindow]) -> bytes:
    """An ExportMetricsServiceRequest: a resource group per window, as each window is its own collection."""
    return _request((window.resource, (_metric(point, window) for point in window.points)) for window in windows)


_name_memo: dict[str, bytes] = {}
# Whole fields that only take a few values, written once.
_TRACE_ID_HEAD: Final = _SPAN_TRACE_ID + b"\x10"
_SPAN_ID_HEAD: Final = _SPAN_SPAN_ID + b"\x08"
_PARENT_ID_HEAD: Final = _SPAN_PARENT_ID + b"\x08"
_KIND_FIELDS: Final = {kind: _SPAN_KIND + _SMALL[number] for kind, number in SPAN_KINDS.items()}
_FLAGS_FIELDS: Final = {flags: _SPAN_FLAGS + _pack_u32(flags)
                         for flags in (_FLAGS_HAS_IS_REMOTE, _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)}
# start_time_unix_nano and end_time_unix_nano, tags included (one-byte tags, as their field numbers are below 16)
_pack_times: Final = struct.Struct("<BQBQ").pack
_START_TAG, _END_TAG = 7 << 3 | _FIXED64, 8 << 3 | _FIXED64


def span_bytes(span: SpanData) -> bytes:
    """One Span message's fields."""
    name = _name_memo.get(span.name)
    if name is None:
        name = _string(_SPAN_NAME, span.name)
        if len(_name_memo) < _MAX_MEMO:
            _name_memo[span.name] = name
    parts = [_TRACE_ID_HEAD, span.trace_id.to_bytes(16, "big"), _SPAN_ID_HEAD, span.span_id.to_bytes(8, "big")]
    if span.parent_span_id is not None:
        parts += (_PARENT_ID_HEAD, span.parent_span_id.to_bytes(8, "big"))
    times = _pack_times(_START_TAG, span.start_unix_nano, _END_TAG, span.end_unix_nano)
    parts += (name, _KIND_FIELDS[span.kind], times)
    memo = _memo
    parts += [memo.get((_SPAN_ATTRIBUTES, key, type(value), value)) or attribute(_SPAN_ATTRIBUTES, key, value)
              for key, value in span.attributes.items()]
    if span.error is None:
        parts.append(_UNSET_STATUS)
    else:
        parts.append(length_delimited(_SPAN_STATUS,
                                      _string(_STATUS_MESSAGE, span.error) + _STATUS_CODE + _SMALL[STATUS_CODE_ERROR]))
    parts.append(_FLAGS_FIELDS[span_flags(span)])
    return b"".join(parts)


def span_flags(span: SpanData) -> int:
    """SpanFlags: whether the parent is remote is always known here, and said."""
    remote = span.parent_span_id is not None and span.parent_is_remote
    return _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if remote else 0)


def log_bytes(record: LogData) -> bytes:
    """One LogRecord message's fields."""
    parts = [_fixed64(_LOG_TIME, record.time_unix_nano)] if record.time_unix_nano else []
    if record.severity_number:
        parts += (_LOG_SEVERITY_NUMBER, varint(record.severity_number))
    if record.severity_text:
        parts.append(_string(_LOG_SEVERITY_TEXT, record.severity_text))
    parts.append(length_delimited(_LOG_BODY, any_value(record.body)))
    parts += [attribute(_LOG_ATTRIBUTES, key, value) for key, value in record.attributes.items()]
    trace_id, span_id = record.trace_id, record.span_id
    if trace_id and span_id:
        if record.sampled:
            parts += (_LOG_FLAGS, _pack_u32(1))  # W3C trace flags: sampled
        parts += (_LOG_TRACE_ID, b"\x10", trace_id.to_bytes(16, "big"),
                  _LOG_SPAN_ID, b"\x08", span_id.to_bytes(8, "big"))
    if record.observed_unix_nano:
        parts.append(_fixed64(_LOG_OBSERVED, record.observed_unix_nano))
    return b"".join(parts)


def _metric(point: MetricPoint, window: MetricsWindow) -> bytes:
    times = _fixed64(_POINT_START, window.start_unix_nano) + _fixed64(_POINT_TIME, window.time_unix_nano)
    temporality = _TEMPORALITY + _SMALL[CUMULATIVE if window.cumulative else DELTA]
    if isinstance(point, SumPoint):
        data = length_delimited(_METRIC_SUM, length_delimited(_DATA_POINTS, times + _number(point.value))
                                + temporality + (_MONOTONIC + b"\x01" if point.monotonic else b""))
    elif isinstance(point, GaugePoint):
        data = length_delimited(_METRIC_GAUGE, length_delimited(_DATA_POINTS, times + _number(point.value)))
    else:
        data = length_delimited(_METRIC_HISTOGRAM,
                                length_delimited(_DATA_POINTS, times + _histogram(point)) + temporality)
    head = _string(_METRIC_NAME, point.name)
    head += _string(_METRIC_DESCRIPTION, point.description) if point.description else b""
    head += _string(_METRIC_UNIT, point.unit) if point.unit else b""
    return head + data


def _number(value: float) -> bytes:
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in INT64:
            raise OverflowError(f"{value} does not fit an int64")
        return _NUMBER_INT + _pack_u64(value % _U64)  # sfixed64
    return _NUMBER_DOUBLE + _pack_f64(value)


def _histogram(point: HistogramPoint) -> bytes:
    buckets = b"".join(_pack_u64(count) for count in point.counts)
    bounds = b"".join(_pack_f64(bound) for bound in point.bounds)
    return (_fixed64(_HISTOGRAM_COUNT, point.count) + _HISTOGRAM_SUM + _pack_f64(point.sum)
            + (length_delimited(_HISTOGRAM_BUCKETS, buckets) if buckets else b"")
            + (length_delimited(_HISTOGRAM_BOUNDS, bounds) if bounds else b"")
            + _HISTOGRAM_MIN + _pack_f64(point.min) + _HISTOGRAM_MAX + _pack_f64(point.max))


def read_partial_success(body: bytes) -> tuple[int, str | None]:
    """(rejected items, message) of an Export*ServiceResponse: its field 1, an Export*PartialSuccess whose field 1
    counts the rejected items and field 2 says why, alike for every signal. ValueError if it is not protobuf."""
    rejected, message = 0, None
    for field, value in _fields(body):
        if field == 1 and isinstance(value, bytes):
            for inner, inner_value in _fields(value):
                if inner == 1 and isinstance(inner_value, int):
                    rejected = inner_value - _U64 if inner_value >= 1 << 63 else inner_value
                elif inner == 2 and isinstance(inner_value, bytes):
                    message = inner_value.decode("utf-8", "replace") or None
    return rejected, message


def _fields(body: bytes) -> Iterable[tuple[int, int | bytes]]:
    """(field number, value) of each field of a message: varints as ints, everything else as its bytes."""
    position, end = 0, len(body)
    while position < end:
        key, position = _read_varint(body, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _read_varint(body, position)
            yield field, value
        elif wire_type in (_FIXED64, _FIXED32):
            width = 8 if wire_type == _FIXED64 else 4
            if position + width > end:
                raise ValueError("truncated protobuf field")
            yield field, body[position:position + width]
            position += width
        elif wire_type == _LEN:
            size, position = _read_varint(body, position)
            if position + size > end:
                raise ValueError("truncated protobuf field")
            yield field, body[position:position + size]
            position += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _read_varint(body: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(body) or shift > 63:
            raise ValueError("truncated or overlong protobuf varint")
        byte = body[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
