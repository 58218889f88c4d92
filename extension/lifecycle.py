"""The INVOKE/SHUTDOWN loop: per invocation, what the flush policy's plan says (wait for runtimeDone,
flush, or leave it to the background); at SHUTDOWN, collect the stragglers and flush within the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from extension.events import Invoke, Shutdown
from extension.flush import Plan


class EventSource(Protocol):
    async def next_event(self) -> Invoke | Shutdown: ...


class Sink(Protocol):
    def note_invoke(self, invoke: Invoke) -> None: ...
    async def wait_runtime_done(self, request_id: str) -> None: ...
    async def wait_settled(self) -> None: ...
    def drain_orphans(self) -> None: ...


class Flushing(Protocol):
    def plan(self, now: float) -> Plan: ...
    def before_next(self, held_s: float) -> None: ...
    async def flush(self, *, deadline: float) -> None: ...
    def kick(self) -> None: ...
    async def stop_background(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    margin_s: float = 0.2
    """Kept free before every deadline: the time to answer `next` and for the platform's own work."""
    runtime_done_timeout_s: float | None = None
    """Longest wait for runtimeDone after INVOKE; None waits up to the invocation's deadline."""
    straggler_wait_s: float = 0.3
    """At SHUTDOWN, longest wait for the last platform.report; Elastic measured at most 40 ms."""
    min_flush_s: float = 0.05
    """A flush that would have less time than this before the deadline is deferred to a later one."""
    export_slack_s: float = 0.02
    """Exports end this long before their flush is cut off at the deadline: a collector that hangs then shows
    as a timed-out request, which opens the circuit breaker, instead of a cancellation whose outcome no one
    knows, which would let every later flush wait up to the deadline again."""


def deadline_of(deadline_ms: int, *, wall: Callable[[], float], mono: Callable[[], float]) -> float:
    """An epoch-millisecond deadline as a reading of the monotonic clock."""
    return mono() + deadline_ms / 1000 - wall()


async def run_lifecycle(source: EventSource, sink: Sink, flushing: Flushing, *, timing: Timing,
                        telemetry: bool, wall: Callable[[], float] = time.time) -> Shutdown:
    """Loop until SHUTDOWN; `telemetry` False (no subscription) means there is nothing to wait for."""
    loop = asyncio.get_running_loop()
    while True:
        event = await source.next_event()  # never timed: the environment may be frozen for hours
        deadline = deadline_of(event.deadline_ms, wall=wall, mono=loop.time) - timing.margin_s
        if isinstance(event, Shutdown):
            await _within(min(deadline, loop.time() + timing.straggler_wait_s), sink.wait_settled())
            sink.drain_orphans()
            await flushing.stop_background()  # an export in flight goes back to the buffer and leaves now
            await _within(deadline, flushing.flush(deadline=deadline - timing.export_slack_s))
            return event
        sink.note_invoke(event)
        plan = flushing.plan(loop.time())
        if plan.flush_at_start and not plan.await_start_flush:
            flushing.kick()
        elif plan.flush_at_start:
            await _flush_before(deadline, flushing, timing)
        runtime_done_at: float | None = None  # None: we did not wait, so we held nothing after the runtime
        if plan.wait_runtime_done and telemetry:
            wait_until = deadline
            if timing.runtime_done_timeout_s is not None:
                wait_until = min(deadline, loop.time() + timing.runtime_done_timeout_s)
            # Calling next before runtimeDone arrived would freeze the environment with the spans inside.
            await _within(wait_until, sink.wait_runtime_done(event.request_id))
            runtime_done_at = loop.time()
        if plan.flush_at_end:
            await _flush_before(deadline, flushing, timing)
        flushing.before_next(loop.time() - runtime_done_at if runtime_done_at is not None else 0.0)


async def _flush_before(deadline: float, flushing: Flushing, timing: Timing) -> None:
    """Flush, but never past the deadline; too close to it, leave the data for a later flush."""
    if deadline - asyncio.get_running_loop().time() >= timing.min_flush_s:
        await _within(deadline, flushing.flush(deadline=deadline - timing.export_slack_s))


async def _within(deadline: float, work: Coroutine[Any, Any, object]) -> None:
    """Await `work` but give up at `deadline` (a loop-clock reading); the work is then cancelled."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            await work
