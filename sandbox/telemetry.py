"""Telemetry API delivery: per-subscriber batching by maxItems/maxBytes/timeoutMs, one batch in flight,
nothing sent while the environment is frozen, records dropped (and reported) when the consumer lags."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from sandbox import platform_events as pe
from sandbox.subscription import Subscription

# Production "retries to send telemetry (with backoff) in the absence of a listener, or if the POST
# request encounters an error" (telemetry-api); the count and the backoff are not documented.
RETRY_DELAYS_S: Final = (0.05, 0.2, 0.5)
LAGGING_REASON: Final = "Some logs were dropped because the downstream consumer is slower than the logs production rate"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST that the subscriber acknowledged: what it held and when it was sent."""

    sent_at: float
    events: list[pe.JSON]


@dataclass(slots=True)
class _Batch:
    events: list[pe.JSON] = field(default_factory=list)
    size: int = 0
    opened_at: float = 0.0


class Subscriber:
    """One extension's subscription and the loop that delivers its batches."""

    def __init__(self, name: str, subscription: Subscription, session: aiohttp.ClientSession,
                 is_frozen: Callable[[], bool], now: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.subscription = subscription
        self.deliveries: list[Delivery] = []
        self.dropped_records = 0
        self.dropped_bytes = 0
        self._session = session
        self._is_frozen = is_frozen
        self._now = now
        self._batch = _Batch()
        self._outgoing: _Batch | None = None
        self._force = False
        self._unreported = (0, 0)
        self._wakeup = asyncio.Event()

    @property
    def idle(self) -> bool:
        return not self._batch.events and self._outgoing is None

    def offer(self, event: pe.TelemetryEvent) -> None:
        if event.category not in self.subscription.types:
            return
        envelope = event.envelope(self.subscription.schema_version)
        size = len(json.dumps(envelope, separators=(",", ":")))
        if self._full() and not self._seal() and event.category != "platform":
            # The previous batch is still on its way (or the environment is frozen): Lambda drops records,
            # never platform events, to keep its memory bounded, and says so with platform.logsDropped.
            self.dropped_records += 1
            self.dropped_bytes += size
            records, size_total = self._unreported
            self._unreported = (records + 1, size_total + size)
            return
        self._append(envelope, size)
        if self._full():
            self._seal()

    def flush_now(self) -> None:
        """Send what is pending without waiting for timeoutMs (the platform does this at shutdown)."""
        self._force = True
        self._wakeup.set()

    def nudge(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._until_ready()
            outgoing = self._outgoing
            assert outgoing is not None
            try:
                await self._deliver(outgoing.events)
            finally:
                self._outgoing = None
                self._report_drops()

    def _append(self, envelope: pe.JSON, size: int) -> None:
        if not self._batch.events:
            self._batch.opened_at = self._now()
        self._batch.events.append(envelope)
        self._batch.size += size
        self._wakeup.set()

    def _full(self) -> bool:
        return (len(self._batch.events) >= self.subscription.max_items
                or self._batch.size >= self.subscription.max_bytes)

    def _seal(self) -> bool:
        """Close the open batch for delivery: only one batch is in flight per subscriber."""
        if self._outgoing is not None or self._is_frozen() or not self._batch.events:
            return False
        self._outgoing, self._batch = self._batch, _Batch()
        self._wakeup.set()
        return True

    def _report_drops(self) -> None:
        records, size = self._unreported
        if records:
            self._unreported = (0, 0)
            self._append(pe.logs_dropped(time.time(), dropped_records=records, dropped_bytes=size,
                                         reason=LAGGING_REASON).envelope(self.subscription.schema_version), 0)

    async def _until_ready(self) -> None:
        while True:
            self._wakeup.clear()
            timeout_s: float | None = None
            if self._outgoing is None and self._batch.events and not self._is_frozen():
                due = self._batch.opened_at + self.subscription.timeout_ms / 1000
                if self._force or self._full() or self._now() >= due:
                    self._force = False
                    self._seal()
                else:
                    timeout_s = due - self._now()
            if self._outgoing is not None and not self._is_frozen():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout_s)

    async def _deliver(self, events: list[pe.JSON]) -> None:
        # The platform reaches the listener on loopback; the path of the subscribed URI is kept.
        url = f"http://127.0.0.1:{self.subscription.port}{self.subscription.path}"
        body = json.dumps(events, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Host": f"sandbox.localdomain:{self.subscription.port}"}
        problem = ""
        for delay_s in (*RETRY_DELAYS_S, None):
            while self._is_frozen():
                await self._wait_thaw()
            sent_at = time.time()
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status < 300:
                        self.deliveries.append(Delivery(sent_at, events))
                        return
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, OSError) as exc:
                problem = type(exc).__name__
            if delay_s is not None:
                await asyncio.sleep(delay_s)
        # The whole batch is lost, platform events too, and logsDropped counts all of it (as the LMI relay does).
        self.dropped_records += len(events)
        self.dropped_bytes += len(body)
        self._append(pe.logs_dropped(time.time(), dropped_records=len(events), dropped_bytes=len(body),
                                     reason=f"could not send events: {problem}")
                     .envelope(self.subscription.schema_version), 0)

    async def _wait_thaw(self) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), 0.5)


class TelemetryHub:
    """Fans platform, function and extension events out to the subscribers."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.subscribers: dict[str, Subscriber] = {}
        self.platform_history: list[pe.TelemetryEvent] = []
        """Every platform event produced, for tests and benchmarks to compare with what arrived."""
        self.frozen = False
        self._session = session
        self._init_events: list[pe.TelemetryEvent] | None = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def open(self) -> bool:
        return self._init_events is not None

    def emit(self, event: pe.TelemetryEvent) -> None:
        if event.category == "platform":
            self.platform_history.append(event)
        if self._init_events is not None:
            self._init_events.append(event)
        for subscriber in self.subscribers.values():
            subscriber.offer(event)

    def subscribe(self, name: str, subscription: Subscription) -> Subscriber:
        subscriber = Subscriber(name, subscription, self._session, lambda: self.frozen)
        # Events produced during init before this subscription are replayed to it.
        for event in self._init_events or ():
            subscriber.offer(event)
        self.subscribers[name] = subscriber
        self._tasks.append(asyncio.create_task(subscriber.run(), name=f"telemetry-{name}"))
        self.emit(pe.telemetry_subscription(time.time(), name=name, types=sorted(subscription.types)))
        return subscriber

    def open_subscriptions(self) -> None:
        self._init_events = []

    def close_subscriptions(self) -> None:
        self._init_events = None

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False
        for subscriber in self.subscribers.values():
            subscriber.nudge()

    def flush_now(self) -> None:
        for subscriber in self.subscribers.values():
            subscriber.flush_now()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until every subscriber has delivered what it holds."""
        deadline = time.monotonic() + timeout_s
        while not all(s.idle for s in self.subscribers.values()):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def aclose(self) -> None:
        for task in self._tasks:
            # aiohttp can turn a cancellation that lands inside a request into a ClientError, which the retry
            # loop then handles: cancel again until the task has really stopped.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
        self._tasks.clear()
        self.subscribers.clear()
