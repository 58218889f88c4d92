"""Telemetry events to finished spans: per invocation, its phases, its report, and the init span.

Pure and stateful: `SpanAssembler.feed(events)` takes events in any order across batches and
returns the spans they complete. Everything is keyed by request id, never by "the current
invocation", and pending state is bounded.

The shape of one invocation's trace:

    <function name>     SERVER    platform.start .. start + runtimeDone.durationMs; remote parent: X-Ray Parent
    ├── responseLatency INTERNAL  runtimeDone.spans, exact start and duration
    ├── responseDuration, runtimeOverhead
    ├── report          INTERNAL  platform.start .. start + report.durationMs: billed duration, memory
    │   └── extensionOverhead     report.spans
    └── init            INTERNAL  (cold start only) initStart .. initStart + initReport.durationMs

Why a separate `report` span: platform.report arrives after the environment thaws (with the next
invocation, or at SHUTDOWN), while the invocation span must leave at runtimeDone so it is flushed
before the freeze. Holding the invocation span for its report would delay every trace by one
invocation, and lose the last one if SHUTDOWN never comes. The report span covers the billed
window (runtime plus extensions), so it may outlast its parent; that is what it measures.

The end of the invocation span is start + runtimeDone.metrics.durationMs when present: the
envelope `time` is when the platform wrote the event, not when the runtime finished.

Init happens before the first invocation's trace id is known, so the finished init span waits
for the first platform.start and then joins that trace; drain_orphans() sends an init no
invocation claimed as a trace of its own. `Sampled=0` in the X-Ray header drops the invocation
and everything under it, init included, and counts the spans dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from extension.convert.builders import IdGenerator, SpanBuilder, TraceIds
from extension.convert.resource import with_instance
from extension.events import (
    Invoke,
    ParsedBatch,
    PlatformInitReport,
    PlatformInitRuntimeDone,
    PlatformInitStart,
    PlatformReport,
    PlatformRuntimeDone,
    PlatformStart,
    TelemetryEvent,
    Unknown,
)
from extension.telemetry import Resource, SpanData
from extension.xray import parse_xray_header

DEFAULT_MAX_PENDING = 100
# Log lines join their invocation's span after it has left (a JSON line names its requestId): remember the
# ids of this many recent invocations for ids_of().
REMEMBERED_IDS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class AssemblerStats:
    """Counts since the assembler was made (the shell logs them once per flush), and what is pending now."""

    malformed: int = 0  # batch items that could not be parsed (fed through feed_batch)
    unknown: int = 0  # events of a type this version does not know
    unsampled_dropped: int = 0  # spans not emitted because the X-Ray header said Sampled=0
    evicted: int = 0  # invocations pushed out by the bound before they were complete
    incomplete: int = 0  # invocations or inits drain_orphans() found too little of to emit
    pending: int = 0  # invocations waiting for more events now


@dataclass(slots=True, kw_only=True)
class _Invocation:
    start: PlatformStart | None = None
    ids: TraceIds | None = None  # set together with start
    done: PlatformRuntimeDone | None = None
    report: PlatformReport | None = None
    coldstart: bool = False
    emitted: bool = False  # the invocation span has left; only the report is awaited


@dataclass(slots=True, kw_only=True)
class _Init:
    start: PlatformInitStart | None = None
    done: PlatformInitRuntimeDone | None = None
    report: PlatformInitReport | None = None
    parent: TraceIds | None = None  # the first invocation, whose trace the init span joins

    def put(self, event: PlatformInitStart | PlatformInitRuntimeDone | PlatformInitReport) -> bool:
        """Record `event`; False if its slot is taken, i.e. it belongs to a later init."""
        match event:
            case PlatformInitStart() if self.start is None:
                self.start = event
            case PlatformInitRuntimeDone() if self.done is None:
                self.done = event
            case PlatformInitReport() if self.report is None:
                self.report = event
            case _:
                return False
        return True


class SpanAssembler:
    """Pairs platform events by request id and emits each span as soon as it is complete."""

    def __init__(
        self, *, resource: Resource, function_name: str, ids: IdGenerator, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        self._build = SpanBuilder(resource=resource, ids=ids)
        self._function_name = function_name
        self._ids = ids
        self._max_pending = max_pending
        self._pending: OrderedDict[str, _Invocation] = OrderedDict()
        self._arns: OrderedDict[str, str] = OrderedDict()
        self._ids_by_request: OrderedDict[str, TraceIds] = OrderedDict()
        self._init: _Init | None = None
        self._first: TraceIds | None = None  # the very first invocation, while no init event has been seen
        self._seen_start = False
        self._malformed = self._unknown = self._unsampled_dropped = self._evicted = self._incomplete = 0

    @property
    def resource(self) -> Resource:
        """The resource spans are made with, faas.instance included once platform.initStart told it."""
        return self._build.resource

    @property
    def stats(self) -> AssemblerStats:
        return AssemblerStats(
            malformed=self._malformed,
            unknown=self._unknown,
            unsampled_dropped=self._unsampled_dropped,
            evicted=self._evicted,
            incomplete=self._incomplete,
            pending=len(self._pending),
        )

    def note_invoke(self, invoke: Invoke) -> None:
        """Remember the invoked ARN from event/next for that invocation's span, if it has not left yet."""
        self._arns[invoke.request_id] = invoke.invoked_function_arn
        while len(self._arns) > self._max_pending:
            self._arns.popitem(last=False)

    def ids_of(self, request_id: str) -> TraceIds | None:
        """The ids of that invocation's SERVER span, once its platform.start was fed (last REMEMBERED_IDS)."""
        return self._ids_by_request.get(request_id)

    def feed_batch(self, batch: ParsedBatch) -> list[SpanData]:
        """feed() the batch's events and count its malformed items."""
        self._malformed += batch.malformed
        return self.feed(batch.events)

    def feed(self, events: Iterable[TelemetryEvent]) -> list[SpanData]:
        """Take events in any order; return the spans they complete."""
        out: list[SpanData] = []
        for event in events:
            match event:
                case PlatformStart() | PlatformRuntimeDone() | PlatformReport():
                    self._on_invocation(event, out)
                case PlatformInitStart() | PlatformInitRuntimeDone() | PlatformInitReport():
                    self._on_init(event, out)
                case Unknown():
                    self._unknown += 1
        return out

    def drain_orphans(self) -> list[SpanData]:
        """At SHUTDOWN: emit what can still be emitted, then forget all pending state.

        An init no invocation claimed becomes a trace of its own. An invocation with a report but
        no runtimeDone (Lambda Managed Instances send none) ends at start + report.durationMs.
        An invocation whose span has left but whose report never came needs nothing more.
        """
        out: list[SpanData] = []
        for request_id, invocation in list(self._pending.items()):
            if invocation.emitted:
                continue
            if invocation.start is None or invocation.report is None:
                self._incomplete += 1
                continue
            self._emit_invocation(invocation, invocation.report, out)
            self._advance(request_id, invocation, out)
        self._pending.clear()
        self._emit_init(out, final=True)
        return out

    def _on_invocation(
        self, event: PlatformStart | PlatformRuntimeDone | PlatformReport, out: list[SpanData]
    ) -> None:
        invocation = self._pending.get(event.request_id)
        if invocation is None:
            invocation = self._pending[event.request_id] = _Invocation()
            if len(self._pending) > self._max_pending:
                self._pending.popitem(last=False)
                self._evicted += 1
        match event:
            case PlatformStart() if invocation.start is None:
                self._begin(invocation, event, out)
            case PlatformRuntimeDone():
                invocation.done = event
            case PlatformReport():
                invocation.report = event
        self._advance(event.request_id, invocation, out)

    def _begin(self, invocation: _Invocation, start: PlatformStart, out: list[SpanData]) -> None:
        invocation.start, invocation.ids = start, self._trace_ids(start)
        self._ids_by_request[start.request_id] = invocation.ids
        self._ids_by_request.move_to_end(start.request_id)
        if len(self._ids_by_request) > REMEMBERED_IDS:
            self._ids_by_request.popitem(last=False)
        first, self._seen_start = not self._seen_start, True
        claims_init = False
        if self._init is not None and self._init.parent is None:
            self._init.parent, claims_init = invocation.ids, True
        # The extension starts during init, so its first invocation is a cold start even if the
        # init events are late; remember it so they can still join its trace.
        invocation.coldstart = claims_init or first
        self._first = invocation.ids if first and not claims_init else None
        self._emit_init(out, final=False)

    def _advance(self, request_id: str, invocation: _Invocation, out: list[SpanData]) -> None:
        ids, start = invocation.ids, invocation.start
        if ids is None or start is None:
            return
        if not invocation.emitted and invocation.done is not None:
            self._emit_invocation(invocation, invocation.done, out)
        if invocation.emitted and invocation.report is not None:
            self._release(ids.sampled, self._build.report(ids, start, invocation.report), out)
            del self._pending[request_id]

    def _emit_invocation(
        self, invocation: _Invocation, outcome: PlatformRuntimeDone | PlatformReport, out: list[SpanData]
    ) -> None:
        ids, start = invocation.ids, invocation.start
        assert ids is not None and start is not None  # noqa: S101 -- for mypy: callers check, ids come with start
        invocation.emitted = True
        arn = self._arns.pop(start.request_id, None)
        spans = self._build.invocation(
            self._function_name, ids, start, outcome, coldstart=invocation.coldstart, invoked_arn=arn
        )
        self._release(ids.sampled, spans, out)

    def _on_init(
        self, event: PlatformInitStart | PlatformInitRuntimeDone | PlatformInitReport, out: list[SpanData]
    ) -> None:
        if isinstance(event, PlatformInitStart) and event.instance_id:
            self._build.resource = with_instance(self._build.resource, event.instance_id)
        if self._init is not None and not self._init.put(event):
            self._emit_init(out, final=True)  # a second init (after a reset): finish the first one first
        if self._init is None:
            self._init, self._first = _Init(parent=self._first), None
            self._init.put(event)
        self._emit_init(out, final=False)

    def _emit_init(self, out: list[SpanData], *, final: bool) -> None:
        """Emit the init span once it is finished and joined; with `final`, as well as it can."""
        init = self._init
        if init is None:
            return
        outcome = init.report or (init.done if final else None)
        if init.start is None or outcome is None or (init.parent is None and not final):
            if final:
                self._init, self._incomplete = None, self._incomplete + 1
            return
        self._init = None
        sampled = init.parent is None or init.parent.sampled
        self._release(sampled, self._build.init(init.parent, init.start, outcome), out)

    def _trace_ids(self, start: PlatformStart) -> TraceIds:
        """From tracing.value (X-Ray) and tracing.spanId when present, else fresh ids and no parent."""
        xray = parse_xray_header(start.tracing.value) if start.tracing is not None else None
        trace_id = xray.trace_id if xray is not None else self._ids.generate_trace_id()
        span_id = _span_id(start.tracing.span_id if start.tracing is not None else None)
        return TraceIds(
            trace_id=trace_id,
            span_id=span_id or self._ids.generate_span_id(),
            remote_parent_id=xray.parent_span_id if xray is not None else None,
            sampled=xray is None or xray.sampled is not False,  # only an explicit Sampled=0 drops
        )

    def _release(self, sampled: bool, spans: list[SpanData], out: list[SpanData]) -> None:
        if sampled:
            out.extend(spans)
        else:
            self._unsampled_dropped += len(spans)


def _span_id(text: str | None) -> int | None:
    """A 16-hex-digit, non-zero span id, or None."""
    if text is None or len(text) != 16:
        return None
    try:
        return int(text, 16) or None
    except ValueError:
        return None
