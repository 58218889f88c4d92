"""The INVOKE/SHUTDOWN loop against scripted fakes: what it waits for, in which order, and for how long."""

from __future__ import annotations

import asyncio
import time

from extension.events import Invoke, Shutdown
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

    async def flush(self, *, deadline: float) -> object:
        self.calls.append(("flush", round(deadline - asyncio.get_running_loop().time(), 1)))
        return None


def invoke(request_id: str, in_s: float) -> Invoke:
    return Invoke(request_id=request_id, deadline_ms=int((time.time() + in_s) * 1000),
                  invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f", tracing=None)


def shutdown(in_s: float) -> Shutdown:
    return Shutdown(shutdown_reason="spindown", deadline_ms=int((time.time() + in_s) * 1000))


async def test_waits_for_runtime_done_then_flushes_before_next() -> None:
    sink = RecordingSink()
    ended = await run_lifecycle(ScriptedSource(invoke("a", 5), invoke("b", 5), shutdown(2)), sink,
                                timing=Timing(margin_s=0.2), telemetry=True)
    assert ended.shutdown_reason == "spindown"
    names = [name for name, _ in sink.calls]
    assert names == ["note_invoke", "wait_runtime_done", "flush", "note_invoke", "wait_runtime_done", "flush",
                     "wait_settled", "drain_orphans", "flush"]
    # Every flush gets the event's deadline less the margin.
    assert sink.calls[2][1] == 4.8 and sink.calls[-1][1] == 1.8


async def test_a_missing_runtime_done_is_waited_for_until_the_deadline_only() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    started = time.monotonic()
    await run_lifecycle(ScriptedSource(invoke("a", 0.5), shutdown(2)), sink, timing=Timing(margin_s=0.2),
                        telemetry=True)
    assert 0.25 <= time.monotonic() - started < 1.0
    assert [name for name, _ in sink.calls][:3] == ["note_invoke", "wait_runtime_done", "flush"]


async def test_runtime_done_timeout_bounds_the_wait() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    started = time.monotonic()
    await run_lifecycle(ScriptedSource(invoke("a", 30), shutdown(2)), sink,
                        timing=Timing(margin_s=0.2, runtime_done_timeout_s=0.1), telemetry=True)
    assert time.monotonic() - started < 1.0


async def test_without_telemetry_there_is_nothing_to_wait_for() -> None:
    sink = RecordingSink(never_done=frozenset({"a"}))
    await run_lifecycle(ScriptedSource(invoke("a", 30), shutdown(2)), sink, timing=Timing(), telemetry=False)
    assert ("wait_runtime_done", "a") not in sink.calls


async def test_shutdown_stops_waiting_for_stragglers() -> None:
    sink = RecordingSink(settles=False)
    started = time.monotonic()
    await run_lifecycle(ScriptedSource(shutdown(2)), sink, timing=Timing(straggler_wait_s=0.1), telemetry=True)
    assert time.monotonic() - started < 0.5
    assert [name for name, _ in sink.calls] == ["wait_settled", "drain_orphans", "flush"]
