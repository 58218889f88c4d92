"""The pipeline: telemetry batches in, spans into the bounded buffer, flushes out through the exporter."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from opentelemetry.sdk.trace import ReadableSpan

from extension import log
from extension.buffer import Buffer
from extension.convert.health import HealthSnapshot, HealthTotals
from extension.convert.spans import SpanAssembler
from extension.events import Invoke, PlatformRuntimeDone
from extension.export.breaker import CircuitBreaker
from extension.export.otlp import ExportResult
from extension.metering import Metering
from extension.wire import parse_batch

MAX_SPANS_PER_EXPORT: Final = 512
# Drops come in floods (a collector down for minutes, a burst of invocations): one line says enough.
DROP_LOG_INTERVAL_S: Final = 10.0
# A circuit that stays open refuses every flush without a request; one line per interval says so.
REFUSAL_LOG_INTERVAL_S: Final = 10.0
_REMEMBERED_DONE: Final = 256


class SpanExporter(Protocol):
    async def export(self, spans: Sequence[ReadableSpan], *, deadline: float | None) -> ExportResult: ...
    def closing(self) -> None:
        """The next flush is the last (SHUTDOWN): spans left in the buffer after it are lost."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushOutcome:
    exported: int
    failed: int
    left: int
    attempts: int = 0  # export requests sent, retries included


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


class Pipeline:
    """`accept` runs in the listener (sync, never raises); `flush` is awaited by the lifecycle."""

    def __init__(self, assembler: SpanAssembler, buffer: Buffer[ReadableSpan], exporter: SpanExporter | None,
                 *, metering: Metering | None = None, breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._assembler = assembler
        self._buffer = buffer
        self._exporter = exporter
        self._metering = metering
        self._breaker = breaker  # read for the health metrics only
        self._clock = clock
        self._done: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._reported_drops = 0
        self._drop_lines = _Every(DROP_LOG_INTERVAL_S)
        self._refusal_lines = _Every(REFUSAL_LOG_INTERVAL_S)
        self._closing = False
        self.batches = 0
        self.rejected = 0
        self.exported = 0
        self.export_failures = 0
        self.export_retries = 0

    def accept(self, raw: bytes) -> None:
        batch = parse_batch(raw)
        self.batches += 1
        self._buffer.extend(self._assembler.feed_batch(batch))
        if self._metering is not None:
            self._metering.feed(batch.events)
        for event in batch.events:
            if isinstance(event, PlatformRuntimeDone):
                self._mark_done(event.request_id)
        self._changed.set()

    @property
    def pending(self) -> int:
        """Spans waiting, plus one when a metrics window is due or waits."""
        return len(self._buffer) + (1 if self._metering is not None and self._metering.pending else 0)

    def health(self) -> HealthSnapshot:
        totals = HealthTotals(spans_exported=self.exported, spans_dropped=self._buffer.dropped,
                              spans_rejected=self.rejected, export_failures=self.export_failures,
                              export_retries=self.export_retries, telemetry_batches=self.batches,
                              malformed_events=self._assembler.stats.malformed)
        return HealthSnapshot(totals=totals, buffered_spans=len(self._buffer), buffered_bytes=self._buffer.size_bytes,
                              breaker_state=self._breaker.state.value if self._breaker is not None else "closed")

    def note_invoke(self, invoke: Invoke) -> None:
        self._assembler.note_invoke(invoke)

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
        more, so emit what the assembler still holds, and tell the exporter that its next flush is the last."""
        self._buffer.extend(self._assembler.drain_orphans())
        self._closing = True
        if self._exporter is not None:
            self._exporter.closing()
        if self._metering is not None:
            self._metering.closing()

    async def flush(self, *, deadline: float) -> FlushOutcome:
        """Export what the buffer holds, in requests of bounded size, until done or out of time.

        A failed request goes back to the front of the buffer and leaves with the next flush.
        """
        async with self._flush_lock:
            started, exported, failed, attempts = self._clock(), 0, 0, 0
            result: ExportResult | None = None
            partial = _Partial()
            while self._buffer and self._exporter is not None:
                spans = self._buffer.drain(MAX_SPANS_PER_EXPORT)
                try:
                    result = await self._exporter.export(spans, deadline=deadline)
                except asyncio.CancelledError:  # out of time: the outcome is unknown, so they are sent again
                    self._buffer.requeue_front(spans)
                    raise
                attempts += result.attempts
                self.export_retries += result.retries
                if not result.ok:
                    self.export_failures += 1 if result.attempts else 0
                    failed = len(spans)
                    if result.retryable:  # back to the front: they leave first with the next flush
                        self._buffer.requeue_front(spans)
                    else:  # the collector refused them for good (e.g. 400): sending again cannot help
                        self.rejected += len(spans)
                    break
                exported += len(spans)
                self.rejected += result.rejected + result.unencodable
                partial.add(result)
            self.exported += exported - partial.rejected - partial.unencodable
            self._log(_Flushed(exported=exported, failed=failed, attempts=attempts, partial=partial), result,
                      started)
            if self._metering is not None:
                self._metering.health.record_flush(self._clock() - started)
                await self._flush_metrics(deadline)
            return FlushOutcome(exported=exported, failed=failed, left=len(self._buffer), attempts=attempts)

    async def _flush_metrics(self, deadline: float) -> None:
        """After the spans, in the same flush and within its deadline: one request for the waiting windows."""
        assert self._metering is not None
        result = await self._metering.flush(self.health(), deadline=deadline)
        if result is None:
            return
        self.export_retries += result.retries
        if result.ok:
            log.get().debug("metrics_flushed", windows=result.items, duration_ms=round(result.duration_s * 1000, 3))
            return
        self.export_failures += 1 if result.attempts else 0
        if result.attempts or self._refusal_lines.ready(self._clock(), force=self._closing):
            log.get().warning("metrics_export_failed", status=result.status, error=result.error,
                              retryable=result.retryable, windows=result.items,
                              waiting=len(self._metering.windows), dropped_windows=self._metering.windows.dropped)

    def _mark_done(self, request_id: str) -> None:
        self._done[request_id] = None
        if len(self._done) > _REMEMBERED_DONE:
            self._done.popitem(last=False)
        waiting = self._waiting.get(request_id)
        if waiting is not None:
            waiting.set()

    def _log(self, flushed: _Flushed, result: ExportResult | None, started: float) -> None:
        """One line per flush that did something, and one about drops at most every DROP_LOG_INTERVAL_S."""
        now = self._clock()
        self._log_drops(now)
        if result is None:
            return
        stats = self._assembler.stats
        fields = {"spans": flushed.exported, "failed": flushed.failed, "attempts": flushed.attempts,
                  "buffered": len(self._buffer), "dropped_total": self._buffer.dropped,
                  "rejected_total": self.rejected, "malformed_total": stats.malformed,
                  "duration_ms": round((now - started) * 1000, 3)}
        if not result.ok:
            if flushed.attempts == 0 and flushed.exported == 0:  # refused before any request: say so rarely
                if not self._refusal_lines.ready(now, force=self._closing):
                    return
                fields["suppressed"], self._refusal_lines.suppressed = self._refusal_lines.suppressed, 0
            log.get().warning("export_failed", status=result.status, error=result.error,
                              retryable=result.retryable, **fields)
        elif flushed.partial.rejected or flushed.partial.unencodable:
            log.get().warning("export_partially_rejected", rejected=flushed.partial.rejected,
                              unencodable=flushed.partial.unencodable, message=flushed.partial.message, **fields)
        else:
            log.get().info("flushed", **fields)

    def _log_drops(self, now: float) -> None:
        dropped = self._buffer.dropped - self._reported_drops
        if not dropped or not self._drop_lines.ready(now, force=self._closing):
            return
        self._reported_drops = self._buffer.dropped
        log.get().warning("spans_dropped", dropped=dropped, dropped_total=self._buffer.dropped,
                          max_spans=self._buffer.max_items, max_bytes=self._buffer.max_bytes,
                          buffered=len(self._buffer))


@dataclass(slots=True)
class _Partial:
    """What the endpoint refused of the requests it accepted in one flush (OTLP partial success), and what
    could not be encoded to be sent at all."""

    rejected: int = 0
    unencodable: int = 0
    message: str | None = None

    def add(self, result: ExportResult) -> None:
        self.unencodable += result.unencodable
        if result.rejected:
            self.rejected += result.rejected
            self.message = result.message or self.message


@dataclass(frozen=True, slots=True, kw_only=True)
class _Flushed:
    exported: int
    failed: int
    attempts: int
    partial: _Partial
