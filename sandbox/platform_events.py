"""Builders for the Telemetry API's event envelopes and platform records, in the documented schemas."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

JSON = dict[str, Any]

SCHEMA_VERSIONS: Final = ("2022-07-01", "2022-12-13", "2025-01-29")
# Function records become JSON objects only from this schema on (telemetry-schema-reference).
FIRST_SCHEMA_WITH_JSON_RECORDS: Final = "2022-12-13"


def iso_time(unix_s: float) -> str:
    """Lambda's timestamp format: UTC, always three fractional digits, `Z` suffix."""
    moment = dt.datetime.fromtimestamp(unix_s, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def duration_ms(start_s: float, end_s: float) -> float:
    """Durations are float milliseconds truncated to microseconds, as rapid's CalculateDuration does."""
    return int(max(0.0, end_s - start_s) * 1_000_000) / 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryEvent:
    """One event as the platform produces it; `json_record` is the object form of a JSON log line."""

    time_s: float
    type: str
    record: JSON | str
    json_record: JSON | None = None

    @property
    def category(self) -> str:
        return "platform" if self.type.startswith("platform.") else self.type

    def envelope(self, schema_version: str) -> JSON:
        record: JSON | str = self.record
        if self.json_record is not None and schema_version >= FIRST_SCHEMA_WITH_JSON_RECORDS:
            record = self.json_record
        return {"time": iso_time(self.time_s), "type": self.type, "record": record}


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    name: str
    start_s: float
    end_s: float

    def to_json(self) -> JSON:
        return {"name": self.name, "start": iso_time(self.start_s),
                "durationMs": duration_ms(self.start_s, self.end_s)}


def tracing(value: str | None, span_id: str | None = None) -> JSON | None:
    if value is None:
        return None
    context: JSON = {"type": "X-Amzn-Trace-Id", "value": value}
    if span_id is not None:
        context = {"spanId": span_id, **context}
    return context


def _without_none(fields: Mapping[str, Any]) -> JSON:
    return {key: value for key, value in fields.items() if value is not None}


def platform(time_s: float, kind: str, **fields: Any) -> TelemetryEvent:
    return TelemetryEvent(time_s=time_s, type=f"platform.{kind}", record=_without_none(fields))


def init_start(time_s: float, *, phase: str, function_name: str, function_version: str,
               instance_id: str, memory_mb: int, runtime_version: str) -> TelemetryEvent:
    return platform(time_s, "initStart", initializationType="on-demand", phase=phase,
                    runtimeVersion=runtime_version,
                    runtimeVersionArn=f"arn:aws:lambda:us-east-1::runtime:{runtime_version}",
                    functionName=function_name, functionVersion=function_version,
                    instanceId=instance_id, instanceMaxMemory=memory_mb * 1024 * 1024)


def init_runtime_done(time_s: float, *, phase: str, status: str, error_type: str | None) -> TelemetryEvent:
    return platform(time_s, "initRuntimeDone", initializationType="on-demand", phase=phase,
                    status=status, errorType=error_type)


def extension_state(time_s: float, *, name: str, state: str, events: Iterable[str],
                    error_type: str | None = None) -> TelemetryEvent:
    return platform(time_s, "extension", name=name, state=state, events=sorted(events), errorType=error_type)


def init_report(time_s: float, *, phase: str, status: str, error_type: str | None,
                init_duration_ms: float) -> TelemetryEvent:
    return platform(time_s, "initReport", initializationType="on-demand", phase=phase, status=status,
                    errorType=error_type, metrics={"durationMs": init_duration_ms})


def start(time_s: float, *, request_id: str, version: str, trace: JSON | None) -> TelemetryEvent:
    return platform(time_s, "start", requestId=request_id, version=version, tracing=trace)


def runtime_done(time_s: float, *, request_id: str, status: str, error_type: str | None,
                 duration: float, produced_bytes: int | None, spans: Sequence[Span],
                 trace: JSON | None) -> TelemetryEvent:
    metrics: JSON = _without_none({"durationMs": duration, "producedBytes": produced_bytes})
    return platform(time_s, "runtimeDone", requestId=request_id, status=status, errorType=error_type,
                    metrics=metrics, spans=[span.to_json() for span in spans] or None, tracing=trace)


def report(time_s: float, *, request_id: str, status: str, error_type: str | None, duration: float,
           memory_mb: int, max_memory_used_mb: int, init_duration: float | None,
           spans: Sequence[Span], trace: JSON | None) -> TelemetryEvent:
    metrics = _without_none({
        "durationMs": duration,
        "billedDurationMs": max(1, -int(-duration // 1)),  # "rounded up to the nearest millisecond"
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": max_memory_used_mb,
        "initDurationMs": init_duration,
    })
    return platform(time_s, "report", requestId=request_id, status=status, errorType=error_type,
                    metrics=metrics, spans=[span.to_json() for span in spans] or None, tracing=trace)


def telemetry_subscription(time_s: float, *, name: str, types: Sequence[str]) -> TelemetryEvent:
    return platform(time_s, "telemetrySubscription", name=name, state="Subscribed", types=list(types))


def logs_dropped(time_s: float, *, dropped_records: int, dropped_bytes: int, reason: str) -> TelemetryEvent:
    return platform(time_s, "logsDropped", droppedBytes=dropped_bytes, droppedRecords=dropped_records,
                    reason=reason)


def log_line(time_s: float, *, source: str, line: str, json_record: JSON | None) -> TelemetryEvent:
    return TelemetryEvent(time_s=time_s, type=source, record=line, json_record=json_record)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_loads(text: str | bytes) -> Any:
    return json.loads(text)
