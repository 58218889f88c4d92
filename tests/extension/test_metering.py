"""Metrics windows and the extension's health metrics, on a fake clock against a scripted exporter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from support import Clock

from extension.convert.health import ExtensionHealth, HealthSnapshot, HealthTotals
from extension.convert.metrics import PlatformMetrics
from extension.events import PlatformReport
from extension.export.otlp import ExportResult
from extension.metering import MAX_WINDOWS, Metering
from extension.telemetry import GaugePoint, HistogramPoint, MetricPoint, MetricsWindow, Resource, SumPoint


def snapshot(*, exported: int = 0, dropped: int = 0, breaker: str = "closed", buffered: int = 0) -> HealthSnapshot:
    return HealthSnapshot(totals=HealthTotals(spans_exported=exported, spans_dropped=dropped),
                          buffered_spans=buffered, buffered_bytes=buffered * 100, breaker_state=breaker)


def values(points: list[MetricPoint]) -> dict[str, float]:
    return {p.name: p.value for p in points if isinstance(p, SumPoint | GaugePoint)}


def test_cumulative_sums_are_totals_and_delta_sums_the_change_since_the_last_window() -> None:
    cumulative, delta = ExtensionHealth("cumulative"), ExtensionHealth("delta")
    for health in (cumulative, delta):
        health.collect(snapshot(exported=10, dropped=2))
    later = snapshot(exported=25, dropped=2, breaker="open", buffered=7)

    assert values(cumulative.collect(later))["lambda_extension.spans.exported"] == 25
    delta_values = values(delta.collect(later))
    assert delta_values["lambda_extension.spans.exported"] == 15
    assert delta_values["lambda_extension.spans.dropped"] == 0
    # Gauges say how things stand, whatever the temporality.
    assert delta_values["lambda_extension.breaker.state"] == 2
    assert delta_values["lambda_extension.buffer.spans"] == 7
    assert delta_values["lambda_extension.buffer.size"] == 700


def test_flush_durations_form_a_histogram_that_delta_windows_restart() -> None:
    health = ExtensionHealth("delta")
    for duration_s in (0.004, 0.02, 0.3):
        health.record_flush(duration_s)

    [flushes] = [p for p in health.collect(snapshot()) if isinstance(p, HistogramPoint)]
    assert flushes.name == "lambda_extension.flush.duration" and flushes.count == 3 and flushes.max == 0.3
    assert not [p for p in health.collect(snapshot()) if isinstance(p, HistogramPoint)]


@dataclass
class WindowExporter:
    """Answers with `ok` (switchable); records how many windows each request carried."""

    ok: bool = True
    requests: list[int] = field(default_factory=list)
    closed: bool = False

    async def export(self, items: Sequence[MetricsWindow], *, deadline: float | None) -> ExportResult:
        self.requests.append(len(items))
        if self.ok:
            return ExportResult(ok=True, items=len(items), duration_s=0.0, status=200)
        return ExportResult(ok=False, items=len(items), duration_s=0.0, status=503, retryable=True)

    def closing(self) -> None:
        self.closed = True


def metering(exporter: WindowExporter, clock: Clock, *, interval_s: float = 60.0) -> Metering:
    return Metering(exporter, platform=PlatformMetrics("delta"), health=ExtensionHealth("delta"),
                    resource=lambda: Resource({"service.name": "fn"}), interval_s=interval_s, clock=clock,
                    wall_ns=lambda: int(clock.now * 1e9))


def report(status: str) -> PlatformReport:
    return PlatformReport(time_unix_nano=0, request_id="r", status=status, duration_ms=5.0)


def invocations(window: MetricsWindow) -> float:
    [point] = [point for point in window.points if point.name == "faas.invocations"]
    assert isinstance(point, SumPoint)
    return float(point.value)


async def test_a_window_is_collected_at_most_once_per_interval() -> None:
    exporter, clock = WindowExporter(), Clock()
    meter = metering(exporter, clock, interval_s=60)

    meter.feed([report("success")])
    assert await meter.flush(snapshot(), deadline=1.0) is None and not meter.pending  # not due yet
    clock.now = 60.0
    assert meter.pending
    result = await meter.flush(snapshot(), deadline=61.0)

    assert result is not None and result.ok and exporter.requests == [1]
    assert await meter.flush(snapshot(), deadline=62.0) is None  # the interval starts over


async def test_failed_windows_wait_and_leave_together_at_shutdown() -> None:
    exporter, clock = WindowExporter(ok=False), Clock()
    meter = metering(exporter, clock, interval_s=10)

    sent: list[MetricsWindow] = []
    for minute in (1, 2):
        meter.feed([report("success")] * minute)
        clock.now = minute * 10.0
        await meter.flush(snapshot(), deadline=clock.now + 1)
    assert len(meter.windows) == 2 and meter.pending  # nothing lost while the endpoint is down

    exporter.ok = True
    meter.closing()  # SHUTDOWN: a last window whatever the interval, and everything that waits
    clock.now += 1
    meter.feed([report("success")] * 3)
    sent = meter.windows.drain(len(meter.windows))
    meter.windows.extend(sent)
    result = await meter.flush(snapshot(), deadline=clock.now + 1)

    assert result is not None and result.ok and exporter.closed
    assert exporter.requests == [1, 2, 3] and not meter.windows
    assert [invocations(window) for window in sent] == [1, 2]


async def test_the_waiting_windows_are_bounded() -> None:
    exporter, clock = WindowExporter(ok=False), Clock()
    meter = metering(exporter, clock, interval_s=1)

    for second in range(1, MAX_WINDOWS + 11):
        clock.now = float(second)
        await meter.flush(snapshot(), deadline=clock.now + 1)

    assert len(meter.windows) == MAX_WINDOWS and meter.windows.dropped == 10
