"""The extension's own health as metric points: what it exported, dropped and failed to send, its span buffer,
the worst of its collectors' circuit breakers, and how long its flushes took (pure; the pipeline takes a
snapshot at each metrics window).

Users of a telemetry pipeline must see its losses instead of guessing from gaps. The names sit under
`lambda_extension.*`: the semantic conventions' `otel.sdk.*` metrics describe an in-process SDK, not an
out-of-process agent with a circuit breaker.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from extension.config import Temporality
from extension.convert.metrics import DURATION_BOUNDS_S, HistogramWindow
from extension.telemetry import GaugePoint, MetricPoint, SumPoint

# The breaker's states as a gauge's values: 0 is healthy, and higher is worse.
BREAKER_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthTotals:
    """Counts since the extension started; each becomes a monotonic sum."""

    spans_exported: int = 0
    spans_dropped: int = 0  # the buffer overflowed: the oldest were dropped
    spans_rejected: int = 0  # refused by the endpoint (partial success, 4xx) or not encodable
    export_failures: int = 0  # export requests that did not succeed, after their retries
    export_retries: int = 0
    telemetry_batches: int = 0
    malformed_events: int = 0  # telemetry events the extension could not read
    log_records_exported: int = 0
    log_records_dropped: int = 0  # the log buffer overflowed: the oldest were dropped
    log_records_lost_by_platform: int = 0  # platform.logsDropped: records Lambda could not deliver to us
    metrics_dropped: int = 0  # metric windows, and metrics the function sent, dropped while the endpoint was down


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSnapshot:
    totals: HealthTotals
    buffered_spans: int
    buffered_bytes: int
    breaker_state: str  # closed, half_open, open


_SUMS: Final = {
    "spans_exported": ("lambda_extension.spans.exported", "{span}", "Spans the endpoint accepted"),
    "spans_dropped": ("lambda_extension.spans.dropped", "{span}", "Spans dropped because the buffer was full"),
    "spans_rejected": ("lambda_extension.spans.rejected", "{span}",
                       "Spans the endpoint refused, or that could not be encoded"),
    "export_failures": ("lambda_extension.export.failures", "{request}",
                        "Export requests that failed after their retries"),
    "export_retries": ("lambda_extension.export.retries", "{request}", "Export requests sent again"),
    "telemetry_batches": ("lambda_extension.telemetry.batches", "{batch}", "Telemetry API deliveries received"),
    "malformed_events": ("lambda_extension.telemetry.malformed", "{event}", "Telemetry events that could not be read"),
    "log_records_exported": ("lambda_extension.log_records.exported", "{record}", "Log records the endpoint accepted"),
    "log_records_dropped": ("lambda_extension.log_records.dropped", "{record}",
                            "Log records dropped because the buffer was full"),
    "log_records_lost_by_platform": ("lambda_extension.log_records.lost_by_platform", "{record}",
                                     "Log records Lambda dropped before delivering them (platform.logsDropped)"),
    "metrics_dropped": ("lambda_extension.metrics.dropped", "{item}",
                        "Metric windows and forwarded metrics dropped because their queue was full"),
}


class ExtensionHealth:
    """Turns snapshots into points; with delta temporality a sum counts what happened since the last window."""

    def __init__(self, temporality: Temporality = "cumulative") -> None:
        self.temporality = temporality
        self._reported = HealthTotals()
        self._flush_duration = self._fresh_histogram()

    def record_flush(self, duration_s: float) -> None:
        self._flush_duration.record(duration_s)

    def collect(self, snapshot: HealthSnapshot) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for item in fields(HealthTotals):
            name, unit, description = _SUMS[item.name]
            total = getattr(snapshot.totals, item.name)
            value = total if self.temporality == "cumulative" else total - getattr(self._reported, item.name)
            points.append(SumPoint(name=name, unit=unit, description=description, value=value))
        points += [
            GaugePoint(name="lambda_extension.buffer.spans", unit="{span}", description="Spans waiting in the buffer",
                       value=snapshot.buffered_spans),
            GaugePoint(name="lambda_extension.buffer.size", unit="By",
                       description="Estimated OTLP size of the spans waiting in the buffer",
                       value=snapshot.buffered_bytes),
            GaugePoint(name="lambda_extension.breaker.state", unit="1",
                       description="The collector's circuit breaker: 0 closed, 1 half open, 2 open",
                       value=BREAKER_VALUES.get(snapshot.breaker_state, 0)),
        ]
        flushes = self._flush_duration.point()
        if flushes is not None:
            points.append(flushes)
        self._reported = snapshot.totals
        if self.temporality == "delta":
            self._flush_duration = self._fresh_histogram()
        return points

    @staticmethod
    def _fresh_histogram() -> HistogramWindow:
        return HistogramWindow(name="lambda_extension.flush.duration", unit="s",
                          description="Duration of the extension's flushes", bounds=DURATION_BOUNDS_S)
