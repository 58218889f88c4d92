"""The wire model: Telemetry API events and event/next lifecycle events as frozen dataclasses.

The shared vocabulary and the leaf of the import graph: stdlib only. Bytes become these values
in extension.wire; times are nanoseconds since the epoch, durations milliseconds as on the wire.

The values parse_batch builds for every invocation and every log line (TraceContext, PlatformSpan,
PlatformStart, PlatformRuntimeDone, PlatformReport, FunctionLog, ExtensionLog) are not kw_only: the
parser passes their fields positionally, in the order declared here: keyword arguments add a fifth or
more to the construction of a frozen dataclass, and construction is most of what parsing costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceContext:
    """`tracing` of a record: the X-Ray header in `value`, and the platform's span id if it made one."""

    type: str
    value: str
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformSpan:
    """One item of a record's `spans` (e.g. responseLatency): a phase with an exact start and length."""

    name: str
    start_unix_nano: int
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformInitStart:
    time_unix_nano: int
    initialization_type: str
    phase: str
    function_name: str | None = None
    function_version: str | None = None
    instance_id: str | None = None
    instance_max_memory: int | None = None
    runtime_version: str | None = None
    runtime_version_arn: str | None = None
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformInitRuntimeDone:
    time_unix_nano: int
    initialization_type: str
    phase: str
    status: str
    error_type: str | None = None
    spans: tuple[PlatformSpan, ...] = ()
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformInitReport:
    time_unix_nano: int
    initialization_type: str
    phase: str
    status: str
    duration_ms: float
    error_type: str | None = None
    spans: tuple[PlatformSpan, ...] = ()
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True)
class PlatformStart:
    time_unix_nano: int
    request_id: str
    version: str | None = None
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True)
class PlatformRuntimeDone:
    time_unix_nano: int
    request_id: str
    status: str
    error_type: str | None = None
    duration_ms: float | None = None
    produced_bytes: int | None = None
    spans: tuple[PlatformSpan, ...] = ()
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True)
class PlatformReport:
    """Only `duration_ms` is certain: Lambda Managed Instances send no other metric."""

    time_unix_nano: int
    request_id: str
    status: str
    duration_ms: float
    billed_duration_ms: int | None = None
    memory_size_mb: int | None = None
    max_memory_used_mb: int | None = None
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None
    error_type: str | None = None
    spans: tuple[PlatformSpan, ...] = ()
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformExtension:
    time_unix_nano: int
    name: str
    state: str
    events: tuple[str, ...] = ()
    error_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformTelemetrySubscription:
    time_unix_nano: int
    name: str
    state: str
    types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformLogsDropped:
    time_unix_nano: int
    dropped_bytes: int
    dropped_records: int
    reason: str


@dataclass(frozen=True, slots=True)
class FunctionLog:
    """A line of the function's stdout/stderr: text (one trailing newline stripped) or a JSON object."""

    time_unix_nano: int
    record: str | dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExtensionLog:
    """A line of an extension's stdout/stderr, shaped like FunctionLog."""

    time_unix_nano: int
    record: str | dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    """An event type this version does not know (restore events included); kept, never an error."""

    time_unix_nano: int
    type: str
    record: Any


TelemetryEvent = (
    PlatformInitStart
    | PlatformInitRuntimeDone
    | PlatformInitReport
    | PlatformStart
    | PlatformRuntimeDone
    | PlatformReport
    | PlatformExtension
    | PlatformTelemetrySubscription
    | PlatformLogsDropped
    | FunctionLog
    | ExtensionLog
    | Unknown
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedBatch:
    """One Telemetry API POST: the events we understood and how many items we could not."""

    events: list[TelemetryEvent] = field(default_factory=list)
    malformed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoke:
    request_id: str
    deadline_ms: int
    invoked_function_arn: str
    tracing: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    shutdown_reason: str
    deadline_ms: int
