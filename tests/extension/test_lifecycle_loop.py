"""The INVOKE/SHUTDOWN loop against scripted fakes: what it waits for, in which order, and for how long."""

from __future__ import annotations

import asyncio
import time

from extension.events import Invoke, Shutdown
from extension.flush import END_PLAN, Plan
from extension.lifecycle import Timing, run_lifecycle


class ScriptedSource:
    def __init__(self, *events: Invoke | Shutdown) -> None:
        self.events = list(events)

    async def next_event(self) -> Invoke | Shutdown:
        return self.events.pop(0)


class RecordingSink:
    """Records every call; runtimeDone never comes for the request ids in `never_done`."""

    def __init__(self, never_done: frozenset[str] = frozenset(), settles: bool = True) -> None:
        self.calls: list[tuple[str, object]] = []
        self.never_done = never_done
        self.settles = settles

    def note_invoke(self, invoke: Invoke) -> None:
        self.calls.append(("note_invoke", invoke.request_id))

    async def wait_runtime_done(self, request_id: str) -> None:
        self.calls.append(("wait_runtime_done", request_id))
        if request_id in self.never_done:
            await asyncio.Event().wait()

    async def wait_settled(self) -> None:
        self.calls.append(("wait_settled", None))
        if not self.settles:
            await asyncio.Event().wait()

    def drain_orphans(self) -> None:
        self.calls.append(("drain_orphans", None))


class RecordingFlushing:
    """Stands in for the Flusher: hands out a fixed plan and records flushes into the sink's call list."""

    def __init__(self, sink: RecordingSink, plan: Plan = END_PLAN) -> None:
        self.sink = sink
        self.fixed = plan

    def plan(self, now: float) -> Plan:
        return self.fixed

    async def flush(self, *, deadline: float) -> None:
        self.sink.calls.append(("flush", round(deadline - asyncio.get_running_loop().time(), 1)))

    def kick(self) -> None:
        self.sink.calls.append(("kick", None))

    def before_next(self, held_s: float) -> None:
        pass

    async def stop_background(self) -> None:
        self.sink.calls.append(("stop_background", None))


def invoke(request_id: str, in_s: float) -> Invoke:
    return Invoke(
        request_id=request_id,
        deadline_ms=int((time.time() + in_s) * 1000),
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        tracing=None,
    )


def shutdown(in_s: float) -> Shutdown:
    return Shutdown(shutdown_reason="spindown", deadline_ms=int((time.time() + in_s) * 1000))


async def test_waits_for_runtime_done_then_flushes_before_next() -> None:
    sink = RecordingSink()
    ended = await run_lifecycle(
        ScriptedSource(invoke("a", 5), invoke("b", 5), shutdown(2)),
        sink,
        RecordingFlushing(sink),
        timing=Timing(margin_s=0.2),
        telemetry=True,
    )
    assert ended.shutdown_reason == "spindown"
    names = [name for name, _ in sink.calls]
    assert names == [
        "note_invoke",
        "wait_runtime_done",
        "flush",
        "note_invoke",
        "wait_runtime_done",
        "flush",
        "wait_settled",
        "drain_orphans",
        "stop_background",
        "flush",
    ]
    # Every flush gets the event's deadline less the margin.
    assert sink.calls[2][1] == 4.8 and sink.calls[-1][1] == 1.8


async def test_a_missing_runtime_done_is_waited_for_until_the_deadline_only() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    started = time.monotonic()
    await run_lifecycle(
        ScriptedSource(invoke("a", 0.5), shutdown(2)),
        sink,
        RecordingFlushing(sink),
        timing=Timing(margin_s=0.2),
        telemetry=True,
    )
    assert 0.25 <= time.monotonic() - started < 1.0
    # The wait used up the invocation's time, so its flush is left for later (here: SHUTDOWN's).
    assert [name for name, _ in sink.calls][:3] == ["note_invoke", "wait_runtime_done", "wait_settled"]


async def test_runtime_done_timeout_bounds_the_wait() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    started = time.monotonic()
    await run_lifecycle(
        ScriptedSource(invoke("a", 30), shutdown(2)),
        sink,
        RecordingFlushing(sink),
        timing=Timing(margin_s=0.2, runtime_done_timeout_s=0.1),
        telemetry=True,
    )
    assert time.monotonic() - started < 1.0


async def test_without_telemetry_there_is_nothing_to_wait_for() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    await run_lifecycle(
        ScriptedSource(invoke("a", 30), shutdown(2)), sink, RecordingFlushing(sink), timing=Timing(), telemetry=False
    )
    assert ("wait_runtime_done", "a") not in sink.calls


async def test_shutdown_stops_waiting_for_stragglers() -> None:
    sink = RecordingSink(settles=False)
    started = time.monotonic()
    await run_lifecycle(
        ScriptedSource(shutdown(2)), sink, RecordingFlushing(sink), timing=Timing(straggler_wait_s=0.1), telemetry=True
    )
    assert time.monotonic() - started < 0.5
    assert [name for name, _ in sink.calls] == ["wait_settled", "drain_orphans", "stop_background", "flush"]


async def test_background_plans_call_next_at_once() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    started = time.monotonic()
    await run_lifecycle(
        ScriptedSource(invoke("a", 30), shutdown(2)),
        sink,
        RecordingFlushing(sink, Plan(flush_at_start=True)),
        timing=Timing(),
        telemetry=True,
    )
    assert time.monotonic() - started < 0.5
    assert [name for name, _ in sink.calls][:2] == ["note_invoke", "kick"]
    assert ("wait_runtime_done", "a") not in sink.calls


async def test_periodic_plans_flush_at_the_start_and_wait_for_it() -> None:
    sink = RecordingSink()
    await run_lifecycle(
        ScriptedSource(invoke("a", 5), shutdown(2)),
        sink,
        RecordingFlushing(sink, Plan(flush_at_start=True, await_start_flush=True)),
        timing=Timing(),
        telemetry=True,
    )
    assert [name for name, _ in sink.calls][:2] == ["note_invoke", "flush"]


async def test_a_flush_too_close_to_the_deadline_is_deferred() -> None:
    sink = RecordingSink()
    await run_lifecycle(
        ScriptedSource(invoke("a", 0.22), shutdown(2)),
        sink,
        RecordingFlushing(sink),
        timing=Timing(margin_s=0.2, min_flush_s=0.05),
        telemetry=True,
    )
    assert [name for name, _ in sink.calls][:3] == ["note_invoke", "wait_runtime_done", "wait_settled"]
