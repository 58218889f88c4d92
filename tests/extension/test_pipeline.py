"""The pipeline's flush against a scripted exporter: requeues, partial success, rate-limited drop lines."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from support import Clock

from extension import log
from extension.buffer import Buffer
from extension.convert.logs import LogAssembler
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.export.otlp import ExportResult
from extension.outbox import Outbox
from extension.pipeline import DROP_LOG_INTERVAL_S, REFUSAL_LOG_INTERVAL_S, LogRecords, Pipeline
from extension.telemetry import Resource, SpanData


def spans(count: int) -> list[SpanData]:
    resource = Resource({"service.name": "fn"})
    return [SpanData(name=f"s{i}", kind="internal", trace_id=1, span_id=i + 1, parent_span_id=None,
                      parent_is_remote=False, start_unix_nano=0, end_unix_nano=1, attributes={}, error=None,
                      resource=resource) for i in range(count)]


@dataclass
class Exporter:
    """Answers every export with `answer(spans)`; records the batches and whether closing() was called."""

    answer: Any = None
    batches: list[int] = field(default_factory=list)
    closed: bool = False

    async def export(self, spans: Sequence[SpanData], *, deadline: float | None) -> ExportResult:
        self.batches.append(len(spans))
        if self.answer is not None:
            result: ExportResult = self.answer(spans)
            return result
        return ExportResult(ok=True, items=len(spans), duration_s=0.0, status=200)

    def closing(self) -> None:
        self.closed = True


def pipeline(exporter: Exporter, buffer: Buffer[SpanData], clock: Clock) -> Pipeline:
    resource = lambda_resource(service_name="fn", function_name="fn")
    return Pipeline(SpanAssembler(resource=resource, function_name="fn", ids=_NoIds()), buffer, exporter,
                    clock=clock)


class _NoIds:
    def generate_trace_id(self) -> int:
        return 1

    def generate_span_id(self) -> int:
        return 1


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_a_partial_success_is_logged_once_per_flush_with_its_message() -> None:
    def partly(batch: Sequence[SpanData]) -> ExportResult:
        return ExportResult(ok=True, items=len(batch), duration_s=0.0, status=200, rejected=1,
                            message="span name too long")

    exporter, buffer = Exporter(answer=partly), Buffer[SpanData](10_000)
    buffer.extend(spans(600))  # two requests of at most 512 spans
    flow = pipeline(exporter, buffer, Clock())

    with log.capture() as logs:
        outcome = await flow.flush(deadline=10.0)

    assert exporter.batches == [512, 88] and outcome.exported == 600 and outcome.attempts == 2
    [line] = logs
    assert line["event"] == "export_partially_rejected" and line["level"] == "warning"
    assert line["rejected"] == 2 and line["message"] == "span name too long" and line["rejected_total"] == 2


async def test_a_retryable_failure_goes_back_to_the_front() -> None:
    def unavailable(batch: Sequence[SpanData]) -> ExportResult:
        return ExportResult(ok=False, items=len(batch), duration_s=0.0, status=503, retryable=True, attempts=3)

    exporter, buffer = Exporter(answer=unavailable), Buffer[SpanData](100)
    originals = spans(5)
    buffer.extend(originals)
    flow = pipeline(exporter, buffer, Clock())

    with log.capture() as logs:
        outcome = await flow.flush(deadline=10.0)

    assert outcome.failed == 5 and outcome.left == 5 and buffer.drain() == originals
    [line] = logs
    assert line["event"] == "export_failed" and line["attempts"] == 3 and line["status"] == 503


async def test_drops_are_counted_exactly_and_logged_at_most_once_per_interval() -> None:
    exporter, buffer, clock = Exporter(), Buffer[SpanData](4), Clock()
    flow = pipeline(exporter, buffer, clock)

    with log.capture() as logs:
        for _ in range(30):  # a flush every second, 3 spans dropped before each
            buffer.extend(spans(7))
            await flow.flush(deadline=clock.now + 1)
            clock.now += 1.0
        flow.drain_orphans()  # SHUTDOWN: the last flush reports what is still unreported
        await flow.flush(deadline=clock.now + 1)

    drop_lines = events(logs, "spans_dropped")
    assert sum(line["dropped"] for line in drop_lines) == buffer.dropped == 90
    assert len(drop_lines) == 1 + 30 // int(DROP_LOG_INTERVAL_S)
    assert drop_lines[-1]["dropped_total"] == 90
    assert events(logs, "flushed")[-1]["dropped_total"] == 90
    assert exporter.closed


async def test_refusals_without_a_request_are_logged_rarely() -> None:
    def circuit_open(batch: Sequence[SpanData]) -> ExportResult:
        return ExportResult(ok=False, items=len(batch), duration_s=0.0, error="circuit open", retryable=True,
                            attempts=0)

    exporter, buffer, clock = Exporter(answer=circuit_open), Buffer[SpanData](100), Clock()
    buffer.extend(spans(3))
    flow = pipeline(exporter, buffer, clock)

    with log.capture() as logs:
        for _ in range(25):
            await flow.flush(deadline=clock.now + 1)
            clock.now += REFUSAL_LOG_INTERVAL_S / 10

    failed = events(logs, "export_failed")
    assert [line["duration_ms"] for line in failed] == [0.0] * 3  # at 0, 10 and 20 s
    assert failed[1]["suppressed"] == REFUSAL_LOG_INTERVAL_S - 1
    assert len(buffer) == 3  # nothing lost while refused


async def test_a_byte_bound_buffer_sheds_the_oldest() -> None:
    buffer = Buffer[SpanData](100, max_bytes=1000, size_of=lambda span: 300)
    originals = spans(5)

    buffer.extend(originals)

    assert buffer.drain() == originals[2:] and buffer.dropped == 2


async def test_spans_and_log_records_are_sent_side_by_side() -> None:
    """The span export waits until the log export has started: one after the other, this flush never ends."""
    logs_started = asyncio.Event()

    class Waiting(Exporter):
        async def export(self, spans: Sequence[SpanData], *, deadline: float | None) -> ExportResult:
            await logs_started.wait()
            return await super().export(spans, deadline=deadline)

    class Starting(Exporter):
        async def export(self, spans: Sequence[Any], *, deadline: float | None) -> ExportResult:
            logs_started.set()
            return await super().export(spans, deadline=deadline)

    resource = lambda_resource(service_name="fn", function_name="fn")
    assembler = SpanAssembler(resource=resource, function_name="fn", ids=_NoIds())
    log_buffer = Buffer[Any](10)
    log_buffer.extend(["a log record"])
    logs = LogRecords(assembler=LogAssembler(resource=resource, ids_of=assembler.ids_of),
                      outbox=Outbox(log_buffer, Starting(), max_per_export=10))
    span_buffer = Buffer[SpanData](10)
    span_buffer.extend(spans(2))
    flow = Pipeline(assembler, span_buffer, Waiting(), logs=logs, clock=Clock())

    async with asyncio.timeout(5):
        outcome = await flow.flush(deadline=10.0)

    assert outcome.exported == 2 and not log_buffer
