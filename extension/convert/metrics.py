"""Platform events to metrics: invocations, errors, timeouts, cold starts, durations and memory, as counters
and histograms kept per export window (pure; the shell collects them at each flush).

Names follow the FaaS semantic conventions where they exist (`faas.invocations`, `faas.errors`,
`faas.timeouts`, `faas.coldstarts`, `faas.invoke_duration`, `faas.init_duration`, `faas.mem_usage`);
Lambda's own numbers use `aws.lambda.*` (`billed_duration`, `post_runtime_duration`). Durations are in
seconds and memory in bytes, as the conventions ask.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from extension.config import Temporality
from extension.events import PlatformInitReport, PlatformReport, TelemetryEvent
from extension.telemetry import HistogramPoint, MetricPoint, SumPoint

# The boundaries the FaaS conventions recommend for faas.invoke_duration, used for every duration.
DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
MEMORY_BOUNDS_BYTES = tuple(mb * 1024 * 1024 for mb in (64, 128, 256, 512, 1024, 2048, 4096, 10240))


@dataclass(slots=True, kw_only=True)
class HistogramWindow:
    name: str
    unit: str
    description: str
    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def record(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect_left(self.bounds, value)] += 1  # buckets are (previous bound, bound]
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)

    def point(self) -> HistogramPoint | None:
        if not self.counts:
            return None
        return HistogramPoint(name=self.name, unit=self.unit, description=self.description, bounds=self.bounds,
                              counts=tuple(self.counts), count=sum(self.counts), sum=self.total, min=self.low,
                              max=self.high)


_COUNTERS = {
    "faas.invocations": ("{invocation}", "Number of successful invocations"),
    "faas.errors": ("{error}", "Invocations that ended in an error or a failure"),
    "faas.timeouts": ("{timeout}", "Invocations that timed out"),
    "faas.coldstarts": ("{coldstart}", "Initialisations of an execution environment"),
}


class PlatformMetrics:
    """Accumulates what platform.report and platform.initReport say until `collect`."""

    def __init__(self, temporality: Temporality = "delta") -> None:
        self.temporality = temporality
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._histograms = self._fresh_histograms()

    def feed(self, events: Iterable[TelemetryEvent]) -> None:
        for event in events:
            if isinstance(event, PlatformReport):
                self._on_report(event)
            elif isinstance(event, PlatformInitReport):
                self._counts["faas.coldstarts"] += 1
                self._histograms["faas.init_duration"].record(event.duration_ms / 1000)

    def collect(self) -> list[MetricPoint]:
        """The points of this window; with delta temporality the next window starts from zero."""
        points: list[MetricPoint] = [
            SumPoint(name=name, unit=unit, description=description, value=self._counts[name])
            for name, (unit, description) in _COUNTERS.items()
        ]
        points += [p for histogram in self._histograms.values() if (p := histogram.point()) is not None]
        if self.temporality == "delta":
            self._counts = dict.fromkeys(_COUNTERS, 0)
            self._histograms = self._fresh_histograms()
        return points

    def _on_report(self, report: PlatformReport) -> None:
        if report.status == "success":
            self._counts["faas.invocations"] += 1
        elif report.status in ("error", "failure"):
            self._counts["faas.errors"] += 1
        elif report.status == "timeout":
            self._counts["faas.timeouts"] += 1
        self._histograms["faas.invoke_duration"].record(report.duration_ms / 1000)
        if report.billed_duration_ms is not None:
            self._histograms["aws.lambda.billed_duration"].record(report.billed_duration_ms / 1000)
        if report.max_memory_used_mb is not None:
            self._histograms["faas.mem_usage"].record(report.max_memory_used_mb * 1024 * 1024)
        for span in report.spans:
            if span.name == "extensionOverhead":
                self._histograms["aws.lambda.post_runtime_duration"].record(span.duration_ms / 1000)

    @staticmethod
    def _fresh_histograms() -> dict[str, HistogramWindow]:
        specs = [
            ("faas.invoke_duration", "s", "Duration of the invocation, runtime and extensions", DURATION_BOUNDS_S),
            ("faas.init_duration", "s", "Duration of the execution environment's initialisation", DURATION_BOUNDS_S),
            ("aws.lambda.billed_duration", "s", "Billed duration of the invocation", DURATION_BOUNDS_S),
            ("aws.lambda.post_runtime_duration", "s", "Time extensions took after the runtime was done",
             DURATION_BOUNDS_S),
            ("faas.mem_usage", "By", "Peak memory used by the execution environment", MEMORY_BOUNDS_BYTES),
        ]
        return {name: HistogramWindow(name=name, unit=unit, description=text, bounds=bounds)
                for name, unit, text, bounds in specs}
