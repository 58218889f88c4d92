"""When to flush: the strategy (end, periodic, continuous, adaptive) as pure code driven by a given clock.

- `end`: wait for the invocation's runtimeDone, flush, then call next. Spans leave before the freeze;
  every invocation pays the Telemetry API's delivery delay and an export round trip in post-runtime time.
- `periodic,<ms>`: at the start of an invocation, flush when the interval has passed, overlapping the
  handler; next is called once that flush is done, without waiting for runtimeDone.
- `continuous,<ms>`: flush in the background every interval while the environment is thawed; next is
  called at once. An export may be frozen mid-flight and finish (or be re-sent) after the thaw.
- `adaptive[,<ms>]` (default): `end` while invocations are rare; once they are frequent (an exponentially
  weighted mean of the gaps between INVOKEs, less the time this extension held each invocation after its
  runtimeDone, under BUSY_GAP_S after a warm-up: left in, that time would make a busy function behind a slow
  collector look quiet under `end` and keep it paying), flush in the background
  at the start of invocations when the interval has passed and call next at once, so a busy function
  pays nothing after its runtime. It goes back to `end` when the mean gap grows past twice BUSY_GAP_S,
  or at once after an idle gap of IDLE_RESET_S.

Whatever the strategy, a backup flush runs when data has waited BACKUP_INTERVAL_S (or the strategy's
interval, if shorter) while the environment is thawed, which bounds staleness during long invocations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

DEFAULT_INTERVAL_S: Final = 1.0
BUSY_GAP_S: Final = 1.0
IDLE_RESET_S: Final = 10.0
WARM_UP: Final = 5
SMOOTHING: Final = 0.3
BACKUP_INTERVAL_S: Final = 10.0
ACCEPTED: Final = "end, periodic,<ms>, continuous,<ms>, adaptive or adaptive,<ms>"


class Strategy(enum.Enum):
    END = "end"
    PERIODIC = "periodic"
    CONTINUOUS = "continuous"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushSetting:
    strategy: Strategy = Strategy.ADAPTIVE
    interval_s: float = DEFAULT_INTERVAL_S

    @classmethod
    def parse(cls, text: str) -> FlushSetting:
        """`end`, `periodic,<ms>`, `continuous,<ms>`, `adaptive` or `adaptive,<ms>`; ValueError otherwise."""
        name, _, interval = text.strip().lower().partition(",")
        try:
            strategy = Strategy(name.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a flush strategy; use {ACCEPTED}") from None
        if strategy is Strategy.END:
            if interval:
                raise ValueError(f"{text!r}: `end` takes no interval")
            return cls(strategy=strategy)
        if not interval:
            if strategy is not Strategy.ADAPTIVE:
                raise ValueError(f"{text!r}: `{name}` needs an interval in milliseconds, e.g. `{name},1000`")
            return cls(strategy=strategy)
        if not interval.strip().isdigit() or not 1 <= int(interval) <= 3_600_000:
            raise ValueError(f"{text!r}: the interval must be whole milliseconds between 1 and 3600000")
        return cls(strategy=strategy, interval_s=int(interval) / 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to do for one invocation."""

    flush_at_start: bool = False
    await_start_flush: bool = False
    """True: call next only once the start flush is done (periodic); False: it runs in the background."""
    wait_runtime_done: bool = False
    flush_at_end: bool = False


END_PLAN: Final = Plan(wait_runtime_done=True, flush_at_end=True)


class FlushPolicy:
    """Decides per invocation and for the background flusher; told what happened, never reads a clock."""

    def __init__(self, setting: FlushSetting, *, now: float) -> None:
        self.setting = setting
        self.busy = setting.strategy is Strategy.CONTINUOUS
        self._last_flush = now
        self._last_invoke: float | None = None
        self._held_s = 0.0
        self._mean_gap: float | None = None
        self._gaps = 0

    def on_invoke(self, now: float) -> Plan:
        self._observe_gap(now)
        due = now - self._last_flush >= self.setting.interval_s
        match self.setting.strategy:
            case Strategy.END:
                return END_PLAN
            case Strategy.PERIODIC:
                return Plan(flush_at_start=due, await_start_flush=True)
            case Strategy.CONTINUOUS:
                return Plan()
            case Strategy.ADAPTIVE:
                return Plan(flush_at_start=due) if self.busy else END_PLAN

    def on_flushed(self, now: float) -> None:
        self._last_flush = now

    def on_next(self, held_s: float) -> None:
        """The extension calls `next`, having held the invocation `held_s` after its runtimeDone (0 when it
        did not wait for it): that time is ours, not the function's, and does not count in the next gap."""
        self._held_s = max(0.0, held_s)

    def background_due_at(self) -> float:
        """When the background flusher should flush next, if anything is waiting (a clock reading)."""
        interval = BACKUP_INTERVAL_S
        if self.setting.strategy is not Strategy.END:
            interval = min(interval, self.setting.interval_s)
        if self.setting.strategy is Strategy.CONTINUOUS:
            interval = self.setting.interval_s
        return self._last_flush + interval

    def _observe_gap(self, now: float) -> None:
        previous, self._last_invoke = self._last_invoke, now
        held_s, self._held_s = self._held_s, 0.0
        if self.setting.strategy is not Strategy.ADAPTIVE or previous is None:
            return
        gap = now - previous - held_s
        if gap >= IDLE_RESET_S:  # a lull: start over, as the first invocations after it are rare ones
            self._mean_gap, self._gaps, self.busy = None, 0, False
            return
        self._mean_gap = gap if self._mean_gap is None else SMOOTHING * gap + (1 - SMOOTHING) * self._mean_gap
        self._gaps += 1
        if self._gaps >= WARM_UP and self._mean_gap < BUSY_GAP_S:
            self.busy = True
        elif self._mean_gap > 2 * BUSY_GAP_S:  # hysteresis: no flapping around the threshold
            self.busy = False
