"""Flushes on behalf of the flush policy: on demand from the lifecycle, and in the background."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, Protocol

from extension.flush import FlushPolicy, Plan

# A background flush has no invocation deadline; each export request is bounded by its own timeout.
BACKGROUND_FLUSH_BUDGET_S: Final = 30.0


class FlushSink(Protocol):
    @property
    def pending(self) -> int: ...
    async def flush(self, *, deadline: float) -> object: ...


class Flusher:
    """Owns the flush policy's clock readings; `run()` is the background task, `kick()` wakes it."""

    def __init__(self, sink: FlushSink, policy: FlushPolicy) -> None:
        self.sink = sink
        self.policy = policy
        self._kicked = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._loop.time()

    def plan(self, now: float) -> Plan:
        return self.policy.on_invoke(now)

    def before_next(self, held_s: float) -> None:
        self.policy.on_next(held_s)

    async def flush(self, *, deadline: float) -> None:
        await self.sink.flush(deadline=deadline)
        self.policy.on_flushed(self.now())

    async def stop_background(self) -> None:
        """Cancel the background task; the pipeline puts the spans of a cancelled export back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def attach(self, task: asyncio.Task[None]) -> None:
        """The composition root creates the background task (it owns all tasks) and hands it over."""
        self._task = task

    def kick(self) -> None:
        """Flush in the background as soon as possible, without anyone waiting for it."""
        self._kicked.set()

    async def run(self) -> None:
        """Until cancelled: flush when kicked, or when data has waited as long as the policy allows.

        While the environment is frozen this task does not run; a due flush then starts right after the
        thaw, so data never waits in a thawed environment longer than the policy's interval.
        """
        while True:
            timeout_s = max(0.0, self.policy.background_due_at() - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), timeout_s)
            self._kicked.clear()
            if self.sink.pending:
                await self.flush(deadline=self.now() + BACKGROUND_FLUSH_BUDGET_S)
            else:
                self.policy.on_flushed(self.now())  # nothing waits: the interval starts over
