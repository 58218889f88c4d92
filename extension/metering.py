"""Metrics windows: the platform's numbers and the extension's health, collected at a flush at most once per
export interval (and at SHUTDOWN), kept in a small bounded queue until the endpoint took them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Final

from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from extension.buffer import Buffer
from extension.convert.health import ExtensionHealth, HealthSnapshot
from extension.convert.metrics import PlatformMetrics
from extension.events import TelemetryEvent
from extension.export.otlp import ExportResult, ItemExporter, MetricsItem
from extension.forwarded import Forwarded
from extension.telemetry import MetricsWindow, Resource

# Windows that wait while the metrics endpoint is down: with the default interval, an hour of them.
MAX_WINDOWS: Final = 64
# Metrics the function sent to the receiver, waiting beside the windows for the next flush.
MAX_FORWARDED_METRICS: Final = 1024


class Metering:
    """`feed` runs in the listener; `flush` is awaited by the pipeline's flush, after the spans.

    A window per flush would cost a second request on every invocation under the `end` strategy, billed to
    the user for numbers nobody reads at that rate; once per interval (OTEL_METRIC_EXPORT_INTERVAL), and at
    SHUTDOWN, bounds it. Time spent frozen counts toward the interval, so a quiet function sends its window
    with its next flush. Metrics the function sent to the receiver (`forward`) wait beside the windows, bounded
    on their own, and leave with the next flush, due window or not, in the same request as the windows.
    """

    def __init__(self, exporter: ItemExporter[MetricsItem], *, platform: PlatformMetrics, health: ExtensionHealth,
                 resource: Callable[[], Resource], interval_s: float, max_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._exporter = exporter
        self._platform = platform
        self.health = health
        self._resource = resource
        self._interval_s = interval_s
        self._clock = clock
        self._wall_ns = wall_ns
        self._cumulative = platform.temporality == "cumulative"
        self._started_ns = wall_ns()
        self._window_start_ns = self._started_ns
        self._last_window = clock()
        self._closing = False
        self.windows: Buffer[MetricsWindow] = Buffer(MAX_WINDOWS)
        self.forwarded: Buffer[Forwarded[Metric]] = Buffer(MAX_FORWARDED_METRICS, max_bytes=max_bytes,
                                                           size_of=_size_of)

    def feed(self, events: Iterable[TelemetryEvent]) -> None:
        self._platform.feed(events)

    def forward(self, metrics: Iterable[Forwarded[Metric]]) -> None:
        self.forwarded.extend(metrics)

    @property
    def due(self) -> bool:
        """Whether the next flush collects a window."""
        return self._closing or self._clock() - self._last_window >= self._interval_s

    @property
    def pending(self) -> bool:
        return self.due or bool(self.windows) or bool(self.forwarded)

    def closing(self) -> None:
        """The next flush is the last: it collects a window whatever the interval, and sends all that waits."""
        self._closing = True
        self._exporter.closing()

    async def flush(self, snapshot: HealthSnapshot, *, deadline: float) -> ExportResult | None:
        """Collect a window if one is due, then send every waiting window and forwarded metric in one request;
        None if nothing waits.

        A failed request leaves them queued for the next flush (the oldest dropped beyond MAX_WINDOWS, and beyond
        MAX_FORWARDED_METRICS or the byte bound).
        """
        if self.due:
            self._collect(snapshot)
        if not self.windows and not self.forwarded:
            return None
        windows, forwarded = self.windows.drain(), self.forwarded.drain()
        try:
            result = await self._exporter.export([*windows, *forwarded], deadline=deadline)
        except asyncio.CancelledError:  # out of time: the outcome is unknown, so they are sent again
            self._requeue(windows, forwarded)
            raise
        if not result.ok and result.retryable:
            self._requeue(windows, forwarded)
        return result

    def _requeue(self, windows: list[MetricsWindow], forwarded: list[Forwarded[Metric]]) -> None:
        self.windows.requeue_front(windows)
        self.forwarded.requeue_front(forwarded)

    def _collect(self, snapshot: HealthSnapshot) -> None:
        now_ns = self._wall_ns()
        points = self._platform.collect() + self.health.collect(snapshot)
        start_ns = self._started_ns if self._cumulative else self._window_start_ns
        self.windows.append(MetricsWindow(resource=self._resource(), points=points, cumulative=self._cumulative,
                                          start_unix_nano=start_ns, time_unix_nano=now_ns))
        self._window_start_ns, self._last_window = now_ns, self._clock()


def _size_of(metric: Forwarded[Metric]) -> int:
    return metric.size_bytes
