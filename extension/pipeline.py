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
from extension.convert.spans import SpanAssembler
from extension.events import Invoke, PlatformRuntimeDone
from extension.export.otlp import ExportResult
from extension.wire import parse_batch

MAX_SPANS_PER_EXPORT: Final = 512
_REMEMBERED_DONE: Final = 256


class SpanExporter(Protocol):
    async def export(self, spans: Sequence[ReadableSpan], *, deadline: float | None) -> ExportResult: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushOutcome:
    exported: int
    failed: int
    left: int


class Pipeline:
    """`accept` runs in the listener (sync, never raises); `flush` is awaited by the lifecycle."""

    def __init__(self, assembler: SpanAssembler, buffer: Buffer[ReadableSpan], exporter: SpanExporter | None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._assembler = assembler
        self._buffer = buffer
        self._exporter = exporter
        self._clock = clock
        self._done: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._reported_drops = 0
        self.batches = 0
        self.rejected = 0

    def accept(self, raw: bytes) -> None:
        batch = parse_batch(raw)
        self.batches += 1
        self._buffer.extend(self._assembler.feed_batch(batch))
        for event in batch.events:
            if isinstance(event, PlatformRuntimeDone):
                self._mark_done(event.request_id)
        self._changed.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

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
        self._buffer.extend(self._assembler.drain_orphans())

    async def flush(self, *, deadline: float) -> FlushOutcome:
        """Export what the buffer holds, in requests of bounded size, until done or out of time.

        A failed request goes back to the front of the buffer and leaves with the next flush.
        """
        async with self._flush_lock:
            started, exported, failed = self._clock(), 0, 0
            result: ExportResult | None = None
            while self._buffer and self._exporter is not None:
                spans = self._buffer.drain(MAX_SPANS_PER_EXPORT)
                try:
                    result = await self._exporter.export(spans, deadline=deadline)
                except asyncio.CancelledError:  # out of time: the outcome is unknown, so they are sent again
                    self._buffer.requeue_front(spans)
                    raise
                if not result.ok:
                    failed = len(spans)
                    if result.retryable:  # back to the front: they leave first with the next flush
                        self._buffer.requeue_front(spans)
                    else:  # the collector refused them for good (e.g. 400): sending again cannot help
                        self.rejected += len(spans)
                    break
                exported += len(spans)
                self.rejected += result.rejected
            self._log(exported, failed, result, started)
            return FlushOutcome(exported=exported, failed=failed, left=len(self._buffer))

    def _mark_done(self, request_id: str) -> None:
        self._done[request_id] = None
        if len(self._done) > _REMEMBERED_DONE:
            self._done.popitem(last=False)
        waiting = self._waiting.get(request_id)
        if waiting is not None:
            waiting.set()

    def _log(self, exported: int, failed: int, result: ExportResult | None, started: float) -> None:
        dropped = self._buffer.dropped - self._reported_drops
        self._reported_drops = self._buffer.dropped
        if result is None and not dropped:
            return
        stats = self._assembler.stats
        fields = {"spans": exported, "failed": failed, "buffered": len(self._buffer), "dropped": dropped,
                  "rejected_total": self.rejected, "malformed_total": stats.malformed,
                  "duration_ms": round((self._clock() - started) * 1000, 3)}
        if result is not None and not result.ok:
            log.get().warning("export_failed", status=result.status, error=result.error,
                              retryable=result.retryable, **fields)
        else:
            log.get().info("flushed", **fields)
