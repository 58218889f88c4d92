"""Bytes to events: parse_batch for Telemetry API POSTs, parse_next_event for event/next bodies.

Imports: stdlib, orjson and the extension's leaf modules only. `parse_batch` never raises (a bad
item is counted, never drops its siblings); `parse_next_event` raises ProtocolError, since a
garbled lifecycle event is a broken promise of the Extensions API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from extension._fields import (
    Malformed,
    opt_dict,
    opt_float,
    opt_int,
    opt_str,
    parse_time_unix_nano,
    req_dict,
    req_float,
    req_int,
    req_str,
    str_list,
)
from extension.errors import ProtocolError
from extension.events import (
    ExtensionLog,
    FunctionLog,
    Invoke,
    ParsedBatch,
    PlatformExtension,
    PlatformInitReport,
    PlatformInitRuntimeDone,
    PlatformInitStart,
    PlatformLogsDropped,
    PlatformReport,
    PlatformRuntimeDone,
    PlatformSpan,
    PlatformStart,
    PlatformTelemetrySubscription,
    Shutdown,
    TelemetryEvent,
    TraceContext,
    Unknown,
)


def parse_batch(raw: bytes) -> ParsedBatch:
    """Parse one Telemetry API POST body; never raises."""
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ParsedBatch(malformed=1)
    if not isinstance(items, list):
        return ParsedBatch(malformed=1)
    events: list[TelemetryEvent] = []
    malformed = 0
    for item in items:
        try:
            events.append(_parse_event(item))
        except Malformed:
            malformed += 1
    return ParsedBatch(events=events, malformed=malformed)


def parse_next_event(raw: bytes) -> Invoke | Shutdown:
    """Parse an event/next response body; raises ProtocolError on anything else."""
    try:
        return _next_event(orjson.loads(raw))
    except (orjson.JSONDecodeError, Malformed) as exc:
        raise ProtocolError(f"malformed event/next body: {exc}") from exc


def _next_event(body: object) -> Invoke | Shutdown:
    if not isinstance(body, dict):
        raise Malformed("body is not an object")
    match req_str(body, "eventType").upper():
        case "INVOKE":
            return Invoke(
                request_id=req_str(body, "requestId"),
                deadline_ms=_deadline_ms(body),
                invoked_function_arn=req_str(body, "invokedFunctionArn"),
                tracing=_tracing(body),
            )
        case "SHUTDOWN":
            return Shutdown(shutdown_reason=req_str(body, "shutdownReason").lower(), deadline_ms=_deadline_ms(body))
        case other:
            raise Malformed(f"unknown eventType {other!r}")


def _deadline_ms(body: Mapping[str, Any]) -> int:
    deadline = body.get("deadlineMs")
    if isinstance(deadline, str) and deadline.isdigit():  # as in the documentation's SHUTDOWN example
        return int(deadline)
    return req_int(body, "deadlineMs")


def _parse_event(item: object) -> TelemetryEvent:
    if not isinstance(item, dict):
        raise Malformed("item is not an object")
    time_unix_nano = parse_time_unix_nano(req_str(item, "time"))
    event_type = req_str(item, "type")
    record = item.get("record")
    parse = _PLATFORM_PARSERS.get(event_type)
    if parse is not None:
        if not isinstance(record, dict):
            raise Malformed("record is not an object")
        return parse(time_unix_nano, record)
    log = _LOGS.get(event_type)
    if log is not None:
        return log(time_unix_nano, _log_record(record))
    return Unknown(time_unix_nano=time_unix_nano, type=event_type, record=record)


def _log_record(record: object) -> str | dict[str, Any]:
    if isinstance(record, str):
        return record.removesuffix("\n")
    if isinstance(record, dict):
        return record
    raise Malformed("log record is neither a string nor an object")


def _tracing(record: Mapping[str, Any]) -> TraceContext | None:
    tracing = record.get("tracing")
    if tracing is None:
        return None
    if not isinstance(tracing, dict):
        raise Malformed("tracing is not an object")
    return TraceContext(req_str(tracing, "type"), req_str(tracing, "value"), opt_str(tracing, "spanId"))


def _spans(record: Mapping[str, Any]) -> tuple[PlatformSpan, ...]:
    spans = record.get("spans")
    if spans is None:
        return ()
    if not isinstance(spans, list):
        raise Malformed("spans is not a list of objects")
    return tuple(map(_span, spans))


def _span(span: object) -> PlatformSpan:
    if not isinstance(span, dict):
        raise Malformed("spans is not a list of objects")
    return PlatformSpan(
        req_str(span, "name"), parse_time_unix_nano(req_str(span, "start")), req_float(span, "durationMs")
    )


def _init_start(t: int, r: Mapping[str, Any]) -> PlatformInitStart:
    return PlatformInitStart(
        time_unix_nano=t,
        initialization_type=req_str(r, "initializationType"),
        phase=req_str(r, "phase"),
        function_name=opt_str(r, "functionName"),
        function_version=opt_str(r, "functionVersion"),
        instance_id=opt_str(r, "instanceId"),
        instance_max_memory=opt_int(r, "instanceMaxMemory"),
        runtime_version=opt_str(r, "runtimeVersion"),
        runtime_version_arn=opt_str(r, "runtimeVersionArn"),
        tracing=_tracing(r),
    )


def _init_runtime_done(t: int, r: Mapping[str, Any]) -> PlatformInitRuntimeDone:
    return PlatformInitRuntimeDone(
        time_unix_nano=t,
        initialization_type=req_str(r, "initializationType"),
        phase=req_str(r, "phase"),
        status=req_str(r, "status"),
        error_type=opt_str(r, "errorType"),
        spans=_spans(r),
        tracing=_tracing(r),
    )


def _init_report(t: int, r: Mapping[str, Any]) -> PlatformInitReport:
    return PlatformInitReport(
        time_unix_nano=t,
        initialization_type=req_str(r, "initializationType"),
        phase=req_str(r, "phase"),
        status=req_str(r, "status"),
        duration_ms=req_float(req_dict(r, "metrics"), "durationMs"),
        error_type=opt_str(r, "errorType"),
        spans=_spans(r),
        tracing=_tracing(r),
    )


def _start(t: int, r: Mapping[str, Any]) -> PlatformStart:
    return PlatformStart(t, req_str(r, "requestId"), opt_str(r, "version"), _tracing(r))


def _runtime_done(t: int, r: Mapping[str, Any]) -> PlatformRuntimeDone:
    metrics = opt_dict(r, "metrics")
    return PlatformRuntimeDone(
        t,
        req_str(r, "requestId"),
        req_str(r, "status"),
        opt_str(r, "errorType"),
        opt_float(metrics, "durationMs"),
        opt_int(metrics, "producedBytes"),
        _spans(r),
        _tracing(r),
    )


def _report(t: int, r: Mapping[str, Any]) -> PlatformReport:
    metrics = req_dict(r, "metrics")
    return PlatformReport(
        t,
        req_str(r, "requestId"),
        req_str(r, "status"),
        req_float(metrics, "durationMs"),
        opt_int(metrics, "billedDurationMs"),
        opt_int(metrics, "memorySizeMB"),
        opt_int(metrics, "maxMemoryUsedMB"),
        opt_float(metrics, "initDurationMs"),
        opt_float(metrics, "restoreDurationMs"),
        opt_str(r, "errorType"),
        _spans(r),
        _tracing(r),
    )


def _extension(t: int, r: Mapping[str, Any]) -> PlatformExtension:
    return PlatformExtension(
        time_unix_nano=t,
        name=req_str(r, "name"),
        state=req_str(r, "state"),
        events=str_list(r, "events"),
        error_type=opt_str(r, "errorType"),
    )


def _subscription(t: int, r: Mapping[str, Any]) -> PlatformTelemetrySubscription:
    return PlatformTelemetrySubscription(
        time_unix_nano=t, name=req_str(r, "name"), state=req_str(r, "state"), types=str_list(r, "types")
    )


def _logs_dropped(t: int, r: Mapping[str, Any]) -> PlatformLogsDropped:
    return PlatformLogsDropped(
        time_unix_nano=t,
        dropped_bytes=req_int(r, "droppedBytes"),
        dropped_records=req_int(r, "droppedRecords"),
        reason=req_str(r, "reason"),
    )


# Every platform record is an object, checked once in _parse_event; a log line's record is text or an object.
_PLATFORM_PARSERS: dict[str, Callable[[int, dict[str, Any]], TelemetryEvent]] = {
    "platform.initStart": _init_start,
    "platform.initRuntimeDone": _init_runtime_done,
    "platform.initReport": _init_report,
    "platform.start": _start,
    "platform.runtimeDone": _runtime_done,
    "platform.report": _report,
    "platform.extension": _extension,
    "platform.telemetrySubscription": _subscription,
    "platform.logsDropped": _logs_dropped,
}
_LOGS: dict[str, type[FunctionLog | ExtensionLog]] = {"function": FunctionLog, "extension": ExtensionLog}
