"""The pipeline: telemetry batches in, spans and log records into their bounded buffers, flushes out through
their exporters, and the metrics windows after them."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from extension import forwarded, log
from extension.buffer import Buffer
from extension.convert.health import HealthSnapshot, HealthTotals
from extension.convert.logs import LogAssembler
from extension.convert.parenting import Parenting
from extension.convert.spans import SpanAssembler
from extension.events import Invoke, PlatformRuntimeDone, PlatformStart
from extension.export.breaker import BreakerState
from extension.export.decode import ExportRequest
from extension.export.otlp import ExportResult, ItemExporter, LogItem, SpanItem
from extension.metering import Metering
from extension.outbox import Outbox, Sent
from extension.wire import parse_batch

MAX_SPANS_PER_EXPORT: Final = 512
MAX_LOG_RECORDS_PER_EXPORT: Final = 1024
# Drops come in floods (a collector down for minutes, a burst of invocations): one line says enough.
DROP_LOG_INTERVAL_S: Final = 10.0
# A circuit that stays open refuses every flush without a request; one line per interval says so.
REFUSAL_LOG_INTERVAL_S: Final = 10.0
_REMEMBERED_DONE: Final = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushOutcome:
    exported: int  # spans
    failed: int
    left: int
    attempts: int = 0  # export requests sent for spans, retries included


class _Every:
    """Says yes at most once per `interval_s` (clock readings passed in), counting the noes in between."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._last: float | None = None
        self.suppressed = 0

    def ready(self, now: float, *, force: bool = False) -> bool:
        if force or self._last is None or now - self._last >= self._interval_s:
            self._last = now
            return True
        self.suppressed += 1
        return False


class _Lines:
    """One signal's rate-limited problem lines."""

    def __init__(self, signal: str, items: str) -> None:
        self.signal, self.items = signal, items
        self.drops = _Every(DROP_LOG_INTERVAL_S)
        self.refusals = _Every(REFUSAL_LOG_INTERVAL_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecords:
    """The function's (and extensions') log lines: how they are made, and where they wait."""

    assembler: LogAssembler
    outbox: Outbox[LogItem]


class Pipeline:
    """`accept` runs in the listener and `forward` in the receiver (sync, never raise); `flush` is awaited by the
    lifecycle."""

    def __init__(self, assembler: SpanAssembler, buffer: Buffer[SpanItem],
                 exporter: ItemExporter[SpanItem] | None, *, logs: LogRecords | None = None,
                 metering: Metering | None = None, breaker_state: Callable[[], BreakerState] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._assembler = assembler
        self._spans = Outbox(buffer, exporter, max_per_export=MAX_SPANS_PER_EXPORT)
        self._parenting = Parenting()
        self._logs = logs
        self._metering = metering
        self._breaker_state = breaker_state  # read for the health metrics only
        self._clock = clock
        self._done: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._lines = {"traces": _Lines("traces", "spans"), "logs": _Lines("logs", "log_records")}
        self._metrics_refusals = _Every(REFUSAL_LOG_INTERVAL_S)
        self._closing = False
        self.batches = 0
        self.on_backlog: Callable[[], None] | None = None
        """Called when a buffer is half full (the composition root hands it Flusher.kick): a function that makes
        spans faster than the flush policy sends them would otherwise lose the oldest before the next flush."""

    def accept(self, raw: bytes) -> None:
        batch = parse_batch(raw)
        self.batches += 1
        # Spans first: the log records of an invocation starting in this batch ask for its span's ids. The
        # assembler runs even with traces off: it knows which invocation a log line belongs to, and when it ends.
        spans = self._assembler.feed_batch(batch)
        if self._spans.enabled:
            self._spans.buffer.extend(spans)
        if self._logs is not None:
            self._logs.outbox.buffer.extend(self._logs.assembler.feed(batch.events))
        if self._metering is not None:
            self._metering.feed(batch.events)
        for event in batch.events:
            if isinstance(event, PlatformRuntimeDone):
                self._mark_done(event.request_id)
            elif isinstance(event, PlatformStart):
                self._parenting.started(self._assembler.ids_of(event.request_id))
        self._changed.set()
        self._note_backlog()

    def forward(self, request: ExportRequest) -> None:
        """What the function sent to the receiver: into the same buffers as ours, its root spans under their
        invocation's span. A signal whose exporter is `none` drops it."""
        if isinstance(request, ExportTraceServiceRequest) and self._spans.enabled:
            spans = forwarded.split(request, forwarded.TRACES)
            self._parenting.spans(span.message for span in spans)
            self._spans.buffer.extend(spans)
        elif isinstance(request, ExportLogsServiceRequest) and self._logs is not None:
            records = forwarded.split(request, forwarded.LOGS)
            self._parenting.log_records(record.message for record in records)
            self._logs.outbox.buffer.extend(records)
        elif isinstance(request, ExportMetricsServiceRequest) and self._metering is not None:
            self._metering.forward(forwarded.split(request, forwarded.METRICS))
        self._note_backlog()

    def _note_backlog(self) -> None:
        buffers: list[Buffer[Any]] = [self._spans.buffer]
        if self._logs is not None:
            buffers.append(self._logs.outbox.buffer)
        if self._metering is not None:
            buffers.append(self._metering.forwarded)
        if self.on_backlog is not None and any(buffer.half_full for buffer in buffers):
            self.on_backlog()

    @property
    def pending(self) -> int:
        """Spans and log records waiting, plus one when a metrics window is due or waits."""
        logs = len(self._logs.outbox) if self._logs is not None else 0
        return len(self._spans) + logs + (1 if self._metering is not None and self._metering.pending else 0)

    def health(self) -> HealthSnapshot:
        spans = self._spans.totals
        outboxes = [self._spans.totals] + ([self._logs.outbox.totals] if self._logs is not None else [])
        totals = HealthTotals(
            spans_exported=spans.exported, spans_dropped=self._spans.buffer.dropped, spans_rejected=spans.rejected,
            export_failures=sum(t.failures for t in outboxes), export_retries=sum(t.retries for t in outboxes),
            telemetry_batches=self.batches, malformed_events=self._assembler.stats.malformed,
            metrics_dropped=(self._metering.windows.dropped + self._metering.forwarded.dropped
                             if self._metering is not None else 0),
            **self._log_totals())
        return HealthSnapshot(totals=totals, buffered_spans=len(self._spans),
                              buffered_bytes=self._spans.buffer.size_bytes,
                              breaker_state=(self._breaker_state() if self._breaker_state is not None
                                             else BreakerState.CLOSED).value)

    def _log_totals(self) -> dict[str, int]:
        if self._logs is None:
            return {}
        assembler, outbox = self._logs.assembler, self._logs.outbox
        return {"log_records_exported": outbox.totals.exported, "log_records_dropped": outbox.buffer.dropped,
                "log_records_lost_by_platform": assembler.dropped_records}

    def note_invoke(self, invoke: Invoke) -> None:
        self._assembler.note_invoke(invoke)
        self._parenting.expect(invoke.tracing.value if invoke.tracing is not None else None)

    async def wait_runtime_done(self, request_id: str) -> None:
        if request_id in self._done:
            return
        event = self._waiting.setdefault(request_id, asyncio.Event())
        try:
            await event.wait()
        finally:
            self._waiting.pop(request_id, None)

    async def wait_settled(self) -> None:
        """Wait until no invocation awaits more events (the last platform.report comes late)."""
        while self._assembler.stats.pending:
            self._changed.clear()
            await self._changed.wait()

    def drain_orphans(self) -> None:
        """At SHUTDOWN (the lifecycle calls it once, right before the last flush): no telemetry comes any
        more, so emit what the assembler still holds, and tell the exporters that their next flush is the last."""
        orphans = self._assembler.drain_orphans()
        if self._spans.enabled:
            self._spans.buffer.extend(orphans)
        self._closing = True
        self._spans.closing()
        if self._logs is not None:
            self._logs.outbox.closing()
        if self._metering is not None:
            self._metering.closing()

    async def flush(self, *, deadline: float) -> FlushOutcome:
        """Export what the buffers hold, in requests of bounded size, until done or out of time: spans and log
        records side by side, then a metrics window if one is due. A failed request goes back to the front of
        its buffer and leaves with the next flush.

        Side by side because they go to two endpoints: one after the other, a slow collector would cost an
        `end` invocation its latency twice.
        """
        async with self._flush_lock:
            started = self._clock()
            async with asyncio.TaskGroup() as sending:  # both cancelled together at the deadline
                sending_spans = sending.create_task(self._spans.send(deadline=deadline))
                sending_logs = (sending.create_task(self._logs.outbox.send(deadline=deadline))
                                if self._logs is not None else None)
            spans = sending_spans.result()
            logs = sending_logs.result() if sending_logs is not None else None
            self._log(spans, logs, started)
            if self._metering is not None:
                self._metering.health.record_flush(self._clock() - started)
                await self._flush_metrics(self._metering, deadline)
            return FlushOutcome(exported=spans.exported, failed=spans.failed, left=len(self._spans),
                                attempts=spans.attempts)

    async def _flush_metrics(self, metering: Metering, deadline: float) -> None:
        """After the spans, in the same flush and within its deadline: one request for the waiting windows."""
        result = await metering.flush(self.health(), deadline=deadline)
        if result is None:
            return
        if result.ok:
            log.get().debug("metrics_flushed", windows=result.items, duration_ms=round(result.duration_s * 1000, 3))
            return
        if result.attempts or self._metrics_refusals.ready(self._clock(), force=self._closing):
            log.get().warning("metrics_export_failed", status=result.status, error=result.error,
                              retryable=result.retryable, windows=result.items,
                              waiting=len(metering.windows), dropped_windows=metering.windows.dropped)

    def _mark_done(self, request_id: str) -> None:
        self._done[request_id] = None
        if len(self._done) > _REMEMBERED_DONE:
            self._done.popitem(last=False)
        waiting = self._waiting.get(request_id)
        if waiting is not None:
            waiting.set()

    def _log(self, spans: Sent, logs: Sent | None, started: float) -> None:
        """One line per flush that did something, or one per signal that had a problem; drops at most every
        DROP_LOG_INTERVAL_S."""
        now = self._clock()
        outboxes: list[tuple[Outbox[Any], Sent | None, _Lines]] = [(self._spans, spans, self._lines["traces"])]
        if self._logs is not None:
            outboxes.append((self._logs.outbox, logs, self._lines["logs"]))
        for outbox, _, lines in outboxes:
            self._log_drops(outbox, lines, now)
        if all(sent is None or sent.result is None for _, sent, _ in outboxes):
            return
        fields: dict[str, object] = {
            "spans": spans.exported, "failed": spans.failed, "attempts": spans.attempts, "buffered": len(self._spans),
            "dropped_total": self._spans.buffer.dropped, "rejected_total": self._spans.totals.rejected,
            "malformed_total": self._assembler.stats.malformed, "duration_ms": round((now - started) * 1000, 3)}
        if self._logs is not None and logs is not None:
            fields.update(log_records=logs.exported, log_records_failed=logs.failed,
                          log_records_buffered=len(self._logs.outbox),
                          log_records_dropped_total=self._logs.outbox.buffer.dropped,
                          log_records_lost_by_platform=self._logs.assembler.dropped_records)
        problems = [(sent, sent.result, lines) for _, sent, lines in outboxes
                    if sent is not None and sent.result is not None and (not sent.result.ok or sent.partial)]
        for sent, result, lines in problems:
            self._log_problem(sent, result, lines, now, fields)
        if not problems:
            log.get().info("flushed", **fields)

    def _log_problem(self, sent: Sent, result: ExportResult, lines: _Lines, now: float,
                     fields: dict[str, object]) -> None:
        signal: dict[str, object] = {"signal": lines.signal} if lines.signal != "traces" else {}
        if not result.ok:
            if sent.attempts == 0 and sent.exported == 0:  # refused before any request: say so rarely
                if not lines.refusals.ready(now, force=self._closing):
                    return
                signal["suppressed"], lines.refusals.suppressed = lines.refusals.suppressed, 0
            log.get().warning("export_failed", status=result.status, error=result.error,
                              retryable=result.retryable, **signal, **fields)
        else:
            log.get().warning("export_partially_rejected", rejected=sent.rejected, unencodable=sent.unencodable,
                              message=sent.message, **signal, **fields)

    def _log_drops(self, outbox: Outbox[Any], lines: _Lines, now: float) -> None:
        pending = outbox.buffer.dropped - outbox.totals.reported_drops
        if not pending or not lines.drops.ready(now, force=self._closing):
            return
        dropped = outbox.unreported_drops()
        log.get().warning(f"{lines.items}_dropped", dropped=dropped, dropped_total=outbox.buffer.dropped,
                          max_items=outbox.buffer.max_items, max_bytes=outbox.buffer.max_bytes,
                          buffered=len(outbox))
