"""Span shapes: the invocation, report and init spans with their phase children, from paired events.

Stateless apart from the resource and the id generator; SpanAssembler decides when to call them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from extension.events import (
    PlatformInitReport,
    PlatformInitRuntimeDone,
    PlatformInitStart,
    PlatformReport,
    PlatformRuntimeDone,
    PlatformSpan,
    PlatformStart,
)
from extension.telemetry import Resource, SpanData

Scalar = str | bool | int | float

# Far beyond any real phase (Lambda's longest timeout is 15 minutes), yet an end time that still fits
# OTLP's fixed64: a garbled durationMs must neither overflow nor produce a span that cannot be encoded.
_MAX_DURATION_MS: Final = 366 * 24 * 3600 * 1000.0
_INT64: Final = range(-(2**63), 2**63)


class IdGenerator(Protocol):
    """Where new ids come from; app.RandomIds fits, tests count up."""

    def generate_trace_id(self) -> int: ...
    def generate_span_id(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceIds:
    """Where an invocation sits: its trace, its span id, its remote (X-Ray) parent, and whether it is sampled."""

    trace_id: int
    span_id: int
    remote_parent_id: int | None = None
    sampled: bool = True


class SpanBuilder:
    """Builds the spans of one shape at a time; `resource` may be replaced as it becomes known."""

    def __init__(self, *, resource: Resource, ids: IdGenerator) -> None:
        self.resource = resource
        self._ids = ids

    def invocation(
        self,
        name: str,
        ids: TraceIds,
        start: PlatformStart,
        outcome: PlatformRuntimeDone | PlatformReport,
        *,
        coldstart: bool,
        invoked_arn: str | None,
    ) -> list[SpanData]:
        """The SERVER span, ending at start + durationMs, and runtimeDone's phases as its children.

        `outcome` is the runtimeDone, or the report where no runtimeDone exists (Managed Instances).
        """
        done = outcome if isinstance(outcome, PlatformRuntimeDone) else None
        attributes = _present(
            {
                "faas.invocation_id": start.request_id,
                "faas.coldstart": coldstart,
                "aws.lambda.invoked_arn": invoked_arn,
                "aws.lambda.status": outcome.status,
                "aws.lambda.error_type": outcome.error_type,
                "aws.lambda.duration_ms": outcome.duration_ms,
                "aws.lambda.produced_bytes": done.produced_bytes if done is not None else None,
            }
        )
        end = (
            outcome.time_unix_nano if outcome.duration_ms is None else _after(start.time_unix_nano, outcome.duration_ms)
        )
        span = SpanData(
            name=name,
            kind="server",
            trace_id=ids.trace_id,
            span_id=ids.span_id,
            parent_span_id=ids.remote_parent_id,
            parent_is_remote=True,
            start_unix_nano=start.time_unix_nano,
            end_unix_nano=end,
            attributes=attributes,
            error=_error(outcome),
            resource=self.resource,
        )
        return [span, *self._phases(done.spans if done is not None else (), ids.trace_id, ids.span_id)]

    def report(self, parent: TraceIds, start: PlatformStart, report: PlatformReport) -> list[SpanData]:
        """A child covering the billed window, carrying what only platform.report knows."""
        span_id = self._ids.generate_span_id()
        attributes = _present(
            {
                "faas.invocation_id": report.request_id,
                "aws.lambda.status": report.status,
                "aws.lambda.error_type": report.error_type,
                "aws.lambda.duration_ms": report.duration_ms,
                "aws.lambda.billed_duration_ms": report.billed_duration_ms,
                "aws.lambda.memory_size_mb": report.memory_size_mb,
                "aws.lambda.max_memory_used_mb": report.max_memory_used_mb,
                "aws.lambda.init_duration_ms": report.init_duration_ms,
                "aws.lambda.restore_duration_ms": report.restore_duration_ms,
            }
        )
        end = _after(start.time_unix_nano, report.duration_ms)
        span = self._child("report", parent.trace_id, span_id, parent.span_id, start.time_unix_nano, end, attributes,
                           _error(report))
        return [span, *self._phases(report.spans, parent.trace_id, span_id)]

    def init(
        self,
        parent: TraceIds | None,
        start: PlatformInitStart,
        outcome: PlatformInitReport | PlatformInitRuntimeDone,
    ) -> list[SpanData]:
        """The init span: a child of the first invocation's span, or the root of its own trace."""
        trace_id = parent.trace_id if parent is not None else self._ids.generate_trace_id()
        span_id = self._ids.generate_span_id()
        report = outcome if isinstance(outcome, PlatformInitReport) else None
        attributes = _present(
            {
                "faas.coldstart": True,
                "aws.lambda.init.type": start.initialization_type,
                "aws.lambda.init.phase": start.phase,
                "aws.lambda.init.status": outcome.status,
                "aws.lambda.init.error_type": outcome.error_type,
                "aws.lambda.init.duration_ms": report.duration_ms if report is not None else None,
                "aws.lambda.runtime_version": start.runtime_version,
            }
        )
        end = _after(start.time_unix_nano, report.duration_ms) if report is not None else outcome.time_unix_nano
        parent_id = parent.span_id if parent is not None else None
        span = self._child("init", trace_id, span_id, parent_id, start.time_unix_nano, end, attributes, _error(outcome))
        return [span, *self._phases(outcome.spans, trace_id, span_id)]

    def _phases(self, spans: Sequence[PlatformSpan], trace_id: int, parent_id: int) -> list[SpanData]:
        """A record's `spans` (responseLatency, extensionOverhead, …) as INTERNAL children, exact times."""
        new_id = self._ids.generate_span_id
        return [
            self._child(span.name, trace_id, new_id(), parent_id, span.start_unix_nano,
                        _after(span.start_unix_nano, span.duration_ms))
            for span in spans
        ]

    def _child(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int | None,
        start_unix_nano: int,
        end_unix_nano: int,
        attributes: Mapping[str, Scalar] | None = None,
        error: str | None = None,
    ) -> SpanData:
        """An INTERNAL span in this trace whose parent, if any, is one of ours (never remote)."""
        return SpanData(
            name=name,
            kind="internal",
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            parent_is_remote=False,
            start_unix_nano=start_unix_nano,
            end_unix_nano=end_unix_nano,
            attributes=attributes or {},
            error=error,
            resource=self.resource,
        )


def _after(start_unix_nano: int, duration_ms: float) -> int:
    """The end time; a negative, non-finite or absurd duration is clamped, never ends before the start."""
    if 0.0 <= duration_ms <= _MAX_DURATION_MS:  # every well-formed event
        return start_unix_nano + round(duration_ms * 1_000_000)
    clamped = min(max(duration_ms, 0.0), _MAX_DURATION_MS) if duration_ms == duration_ms else 0.0  # NaN: 0
    return start_unix_nano + round(clamped * 1_000_000)


def _error(outcome: PlatformRuntimeDone | PlatformReport | PlatformInitRuntimeDone | PlatformInitReport) -> str | None:
    """Any status but success is an error; the description is the errorType when Lambda gives one."""
    return None if outcome.status == "success" else outcome.error_type or outcome.status


def _present(attributes: Mapping[str, Scalar | None]) -> dict[str, Scalar]:
    """The attributes that have a value OTLP can hold: an int beyond int64 is garbled input, left out."""
    return {key: value for key, value in attributes.items()
            if value is not None and not (isinstance(value, int) and value not in _INT64)}
