"""One signal's way out: its bounded buffer, its exporter, and the count of what became of what it held."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from extension.buffer import Buffer
from extension.export.otlp import ExportResult, ItemExporter

T = TypeVar("T")


@dataclass(slots=True)
class Sent:
    """What one `send` did: items the endpoint took, items that failed (and wait again, or were refused for good),
    requests made, and the last answer (None: nothing waited)."""

    exported: int = 0
    failed: int = 0
    attempts: int = 0
    rejected: int = 0  # refused in accepted requests (OTLP partial success)
    unencodable: int = 0
    message: str | None = None  # the endpoint's partial-success message
    result: ExportResult | None = None

    @property
    def partial(self) -> bool:
        return bool(self.rejected or self.unencodable)


@dataclass(slots=True)
class Totals:
    """Counts since the extension started, for the health metrics and the log lines."""

    exported: int = 0  # taken by the endpoint, partial rejections left out
    rejected: int = 0  # refused for good, partially or whole, or not encodable
    failures: int = 0  # export requests that failed after their retries
    retries: int = 0
    reported_drops: int = field(default=0, repr=False)


class Outbox(Generic[T]):
    """`send` drains the buffer in requests of at most `max_per_export` items until it is empty, a request
    fails, or the deadline cancels it; what failed, or whose outcome is unknown, goes back to the front."""

    def __init__(self, buffer: Buffer[T], exporter: ItemExporter[T] | None, *, max_per_export: int) -> None:
        self.buffer = buffer
        self._exporter = exporter
        self._max_per_export = max_per_export
        self.totals = Totals()

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def enabled(self) -> bool:
        """False when the signal's exporter is `none`: nothing ever leaves."""
        return self._exporter is not None

    def closing(self) -> None:
        if self._exporter is not None:
            self._exporter.closing()

    def unreported_drops(self) -> int:
        """Drops since the last call: the caller says them in a line of its own."""
        dropped = self.buffer.dropped - self.totals.reported_drops
        self.totals.reported_drops = self.buffer.dropped
        return dropped

    async def send(self, *, deadline: float) -> Sent:
        sent = Sent()
        while self.buffer and self._exporter is not None:
            items = self.buffer.drain(self._max_per_export)
            try:
                result = await self._exporter.export(items, deadline=deadline)
            except asyncio.CancelledError:  # out of time: the outcome is unknown, so they are sent again
                self.buffer.requeue_front(items)
                raise
            sent.result = result
            sent.attempts += result.attempts
            self.totals.retries += result.retries
            if not result.ok:
                self.totals.failures += 1 if result.attempts else 0
                sent.failed = len(items)
                if result.retryable:  # back to the front: they leave first with the next flush
                    self.buffer.requeue_front(items)
                else:  # the collector refused them for good (e.g. 400): sending again cannot help
                    self.totals.rejected += len(items)
                break
            sent.exported += len(items)
            sent.unencodable += result.unencodable
            if result.rejected:
                sent.rejected += result.rejected
                sent.message = result.message or sent.message
        self.totals.rejected += sent.rejected + sent.unencodable
        self.totals.exported += sent.exported - sent.rejected - sent.unencodable
        return sent
