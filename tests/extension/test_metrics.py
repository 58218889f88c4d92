"""Platform events to metrics: counts by outcome, histograms in seconds and bytes, delta and cumulative."""

from __future__ import annotations

from extension.convert.metrics import PlatformMetrics
from extension.events import PlatformInitReport, PlatformReport, PlatformSpan
from extension.telemetry import HistogramPoint, MetricPoint, SumPoint


def report(status: str, duration_ms: float, *, billed: int, memory_mb: int, overhead_ms: float) -> PlatformReport:
    return PlatformReport(time_unix_nano=0, request_id="r", status=status, duration_ms=duration_ms,
                          billed_duration_ms=billed, memory_size_mb=128, max_memory_used_mb=memory_mb,
                          spans=(PlatformSpan(name="extensionOverhead", start_unix_nano=0, duration_ms=overhead_ms),))


def by_name(points: list[MetricPoint]) -> dict[str, MetricPoint]:
    return {point.name: point for point in points}


def init_report(duration_ms: float) -> PlatformInitReport:
    return PlatformInitReport(time_unix_nano=0, initialization_type="on-demand", phase="init", status="success",
                              duration_ms=duration_ms)


def test_counts_and_histograms_from_reports() -> None:
    metrics = PlatformMetrics()
    metrics.feed([init_report(234.5), report("success", 11.6, billed=12, memory_mb=67, overhead_ms=2.0),
                  report("error", 30.0, billed=30, memory_mb=70, overhead_ms=1.0),
                  report("timeout", 3000.0, billed=3000, memory_mb=70, overhead_ms=0.0)])
    points = by_name(metrics.collect())
    counts = {name: p.value for name, p in points.items() if isinstance(p, SumPoint)}
    assert counts == {"faas.invocations": 1, "faas.errors": 1, "faas.timeouts": 1, "faas.coldstarts": 1}
    duration = points["faas.invoke_duration"]
    assert isinstance(duration, HistogramPoint)
    assert duration.count == 3 and duration.min == 0.0116 and duration.max == 3.0 and duration.unit == "s"
    assert duration.counts[duration.bounds.index(0.025)] == 1  # 11.6 ms falls in (10 ms, 25 ms]
    memory = points["faas.mem_usage"]
    assert isinstance(memory, HistogramPoint) and memory.max == 70 * 1024 * 1024 and memory.unit == "By"
    init = points["faas.init_duration"]
    assert isinstance(init, HistogramPoint) and init.sum == 0.2345
    overhead = points["aws.lambda.post_runtime_duration"]
    assert isinstance(overhead, HistogramPoint) and overhead.count == 3 and overhead.sum == 0.003


def test_delta_windows_start_over_and_cumulative_ones_do_not() -> None:
    delta, cumulative = PlatformMetrics("delta"), PlatformMetrics("cumulative")
    for metrics in (delta, cumulative):
        metrics.feed([report("success", 5, billed=5, memory_mb=60, overhead_ms=0)])
        metrics.collect()
        metrics.feed([report("success", 5, billed=5, memory_mb=60, overhead_ms=0)])
    second_delta, second_cumulative = by_name(delta.collect()), by_name(cumulative.collect())
    assert isinstance(second_delta["faas.invocations"], SumPoint)
    assert isinstance(second_cumulative["faas.invocations"], SumPoint)
    assert second_delta["faas.invocations"].value == 1 and second_cumulative["faas.invocations"].value == 2
    duration = second_cumulative["faas.invoke_duration"]
    assert isinstance(duration, HistogramPoint) and duration.count == 2


def test_an_empty_window_has_zero_counts_and_no_histograms() -> None:
    points = PlatformMetrics().collect()
    assert all(isinstance(p, SumPoint) and p.value == 0 for p in points)
