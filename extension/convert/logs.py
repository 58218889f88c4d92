"""Function and extension log lines to OTLP log records, each in the trace of the invocation that wrote it.

Pure and stateful: `LogAssembler.feed(events)` takes one batch's events in order and returns its log
records. A record belongs to the invocation it names (Lambda's JSON format carries `requestId`, and so
does the Python runtime's text format, `[LEVEL]\\t<timestamp>\\t<requestId>\\t<message>`); a record that
names none belongs to the invocation running when it was written: the last platform.start whose
runtimeDone has not come yet, in batch order. Init lines and lines written after runtimeDone belong to
no invocation and carry no trace context.

The trace and span ids are those of the invocation's SERVER span, asked of `ids_of` (SpanAssembler.ids_of):
feed the SpanAssembler a batch before this, so the ids of an invocation starting in it are known.

The platform's own START/END/REPORT/INIT_* lines repeat the platform events, which become spans and
metrics; they are skipped and counted. Per-request state lives in `ids_of`, which bounds it; this keeps
only the running invocation's request id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from extension._fields import Malformed, parse_time_unix_nano
from extension.convert.builders import TraceIds
from extension.convert.resource import with_instance
from extension.events import (
    ExtensionLog,
    FunctionLog,
    PlatformInitStart,
    PlatformLogsDropped,
    PlatformRuntimeDone,
    PlatformStart,
    TelemetryEvent,
)
from extension.telemetry import LogData, Resource

IdsOf = Callable[[str], TraceIds | None]
Scalar = str | bool | int | float
Source = Literal["function", "extension"]

# The log data model's SeverityNumber for the levels Lambda and the runtimes' loggers write.
SEVERITY_NUMBERS: Final[Mapping[str, int]] = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "FATAL": 21,
    "CRITICAL": 21,
}
# What Lambda itself writes into the function's stream (RESTORE_* is SnapStart's INIT_*).
PLATFORM_LINE_PREFIXES: Final = (
    "START RequestId:",
    "END RequestId:",
    "REPORT RequestId:",
    "INIT_START ",
    "INIT_REPORT ",
    "RESTORE_START ",
    "RESTORE_REPORT ",
)
_PYTHON_TEXT: Final = re.compile(r"\[([A-Za-z]+)\]\t([^\t]*)\t([^\t]*)\t(.*)", re.DOTALL)
# JSON fields the record itself is made of; the others become attributes.
_JSON_FIELDS: Final = frozenset({"timestamp", "level", "requestId", "message"})
# The Python runtime's JSON fields for an exception, under the semantic conventions' names.
_EXCEPTION_FIELDS: Final[Mapping[str, str]] = {
    "errorType": "exception.type",
    "errorMessage": "exception.message",
    "stackTrace": "exception.stacktrace",
}
_INT64: Final = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Line:
    """What one record says about itself, before it meets its invocation."""

    body: Scalar | None
    time_unix_nano: int | None = None
    request_id: str | None = None
    level: str | None = None
    attributes: Mapping[str, Scalar] | None = None


class LogAssembler:
    """Turns FunctionLog and ExtensionLog events into log records; counts what it skips and what Lambda dropped."""

    def __init__(self, *, resource: Resource, ids_of: IdsOf, own_name: str | None = None) -> None:
        self._resource = resource
        self._ids_of = ids_of
        # This extension's own lines (JSON objects naming it; extension.log puts the name on each) come back
        # through the `extension` subscription: exported, each flush's line would make the next flush due, for ever.
        self._own_name = own_name
        # How the name stands in a line as extension.log prints it: orjson's compact JSON, the name escaped alike.
        self._own_marker = '"extension":' + orjson.dumps(own_name or "").decode()
        self._running: str | None = None  # the invocation between its platform.start and its runtimeDone
        self.converted = 0  # log records returned
        self.skipped = 0  # the platform's own lines, left out
        self.dropped_records = 0  # what platform.logsDropped says Lambda could not deliver to us
        self.dropped_bytes = 0

    @property
    def resource(self) -> Resource:
        """The resource records are made with, faas.instance included once platform.initStart told it."""
        return self._resource

    def feed(self, events: Iterable[TelemetryEvent]) -> list[LogData]:
        """Take one batch's events in order; return a log record for each log line worth sending."""
        out: list[LogData] = []
        for event in events:
            match event:
                case FunctionLog():
                    self._on_line(event.time_unix_nano, event.record, "function", out)
                case ExtensionLog() if self._is_own(event.record):
                    self.skipped += 1
                case ExtensionLog():
                    self._on_line(event.time_unix_nano, event.record, "extension", out)
                case PlatformStart():
                    self._running = event.request_id
                case PlatformRuntimeDone() if event.request_id == self._running:
                    self._running = None
                case PlatformLogsDropped():
                    self.dropped_records += event.dropped_records
                    self.dropped_bytes += event.dropped_bytes
                case PlatformInitStart() if event.instance_id:
                    self._resource = with_instance(self._resource, event.instance_id)
        return out

    def _is_own(self, record: str | dict[str, Any]) -> bool:
        if not self._own_name:
            return False
        if isinstance(record, dict):
            return record.get("extension") == self._own_name
        return self._own_marker in record

    def _on_line(
        self, time_unix_nano: int, record: str | dict[str, Any], source: Source, out: list[LogData]
    ) -> None:
        line = _text_line(record) if isinstance(record, str) else _json_line(record)
        if line is None:
            self.skipped += 1
            return
        request_id = line.request_id or self._running
        ids = self._ids_of(request_id) if request_id is not None else None
        attributes: dict[str, Scalar] = dict(line.attributes or {})
        attributes["aws.lambda.log.source"] = source
        if request_id is not None:
            attributes["faas.invocation_id"] = request_id
        level = line.level.upper() if line.level is not None else None
        out.append(
            LogData(
                time_unix_nano=time_unix_nano if line.time_unix_nano is None else line.time_unix_nano,
                observed_unix_nano=time_unix_nano,
                trace_id=ids.trace_id if ids is not None else None,
                span_id=ids.span_id if ids is not None else None,
                sampled=ids is None or ids.sampled,
                severity_number=SEVERITY_NUMBERS.get(level, 0) if level is not None else 0,
                severity_text=line.level,
                body=line.body,
                attributes=attributes,
                resource=self._resource,
            )
        )
        self.converted += 1


def _text_line(text: str) -> _Line | None:
    """A text record; the Python runtime's format gives level, time and request id. None: a platform line."""
    if text.startswith(PLATFORM_LINE_PREFIXES):
        return None
    match = _PYTHON_TEXT.match(text)
    if match is None:
        return _Line(body=text)
    level, timestamp, request_id, message = match.groups()
    return _Line(body=message, time_unix_nano=_time(timestamp), request_id=request_id or None, level=level)


def _json_line(record: Mapping[str, Any]) -> _Line | None:
    """A JSON record: Lambda's fields make the record, the others its attributes. None: a platform line."""
    kind = record.get("type")
    if isinstance(kind, str) and kind.startswith("platform."):  # START/END/REPORT in Lambda's JSON format
        return None
    message, level, request_id = record.get("message"), record.get("level"), record.get("requestId")
    attributes: dict[str, Scalar] = {}
    for key, value in record.items():
        if key in _JSON_FIELDS:
            continue
        if key in _EXCEPTION_FIELDS:
            attributes[_EXCEPTION_FIELDS[key]] = _exception_text(value)
        elif isinstance(value, dict):  # one level flattened: {"a": {"b": 1}} is a.b = 1
            flat = ((f"{key}.{inner}", _scalar(item)) for inner, item in value.items())
            attributes.update((name, scalar) for name, scalar in flat if scalar is not None)
        elif (scalar := _scalar(value)) is not None:
            attributes[key] = scalar
    timestamp = record.get("timestamp")
    return _Line(
        body=_scalar(message) if "message" in record else _json_text(record),
        time_unix_nano=_time(timestamp) if isinstance(timestamp, str) else None,
        request_id=request_id if isinstance(request_id, str) and request_id else None,
        level=level if isinstance(level, str) and level else None,
        attributes=attributes,
    )


def _time(text: str) -> int | None:
    try:
        return parse_time_unix_nano(text)
    except Malformed:
        return None


def _scalar(value: object) -> Scalar | None:
    """A value OTLP holds as it is; anything else (objects, lists, integers beyond int64) as JSON text."""
    if value is None:
        return None
    if isinstance(value, str | bool | float) or (isinstance(value, int) and value in _INT64):
        return value
    return _json_text(value)


def _exception_text(value: object) -> Scalar:
    """The stack trace comes as a list of lines; one string reads as Python prints it."""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(line.removesuffix("\n") for line in value)
    scalar = _scalar(value)
    return "" if scalar is None else scalar


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, in a record not from the wire
        return str(value)
