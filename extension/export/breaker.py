"""A circuit breaker for the collector: stop sending after repeated failures, probe after a growing cool-down."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"  # requests go out
    OPEN = "open"  # requests are refused without touching the network until the cool-down ends
    HALF_OPEN = "half_open"  # one probe is out; its outcome closes or reopens the circuit


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSettings:
    failure_threshold: int = 3
    """Consecutive failed requests that open the circuit: one flush's first attempt and its two retries."""
    cooldown_s: float = 1.0
    """The first open period; it doubles after every failed probe, up to max_cooldown_s."""
    max_cooldown_s: float = 30.0


class CircuitBreaker:
    """Told what happened and when (`now`, a monotonic reading), never reads a clock.

    Why: a collector that is down or hanging costs every flush a connection attempt or a whole timeout,
    and with the `end` strategy every invocation pays that in post-runtime time. Once it failed
    `failure_threshold` times in a row, or a request waited out its whole timeout, flushes fail at once (the
    data stays in the buffer) and a single probe per cool-down finds out when it is back. Only unavailability
    counts as failure: an answer that refuses the data (400) or throttles (429) comes from a collector that is up.
    """

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        if self.settings.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {self.settings.failure_threshold}")
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown_s = self.settings.cooldown_s
        self._open_until = 0.0
        self._probing = False
        self.opened = 0  # how often a closed circuit opened

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def cooldown_s(self) -> float:
        """The length of the current (or next) open period."""
        return self._cooldown_s

    def reopens_at(self) -> float | None:
        """When an open circuit lets its next probe through (a monotonic reading); None unless open."""
        return self._open_until if self._state is BreakerState.OPEN else None

    def allow(self, now: float) -> bool:
        """Whether a request may go out now; True in HALF_OPEN means this request is the probe."""
        if self._state is BreakerState.OPEN and now >= self._open_until:
            self._state, self._probing = BreakerState.HALF_OPEN, False
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def on_success(self) -> None:
        """The collector answered (whatever it said about the data): close the circuit."""
        self._state, self._failures, self._probing = BreakerState.CLOSED, 0, False
        self._cooldown_s = self.settings.cooldown_s

    def on_failure(self, now: float) -> None:
        """No usable answer (connection failed, timed out, 502/503/504)."""
        if self._state is BreakerState.HALF_OPEN:  # the probe failed: wait longer this time
            self._cooldown_s = min(self.settings.max_cooldown_s, self._cooldown_s * 2)
            self._open(now)
            return
        self._failures += 1
        if self._state is BreakerState.OPEN or self._failures >= self.settings.failure_threshold:
            self._open(now)

    def on_timeout(self, now: float) -> None:
        """No answer within the whole timeout: open at once. A hanging collector is the costliest failure (each
        request waits out its timeout, billed), and the signals that share this breaker must not each pay it."""
        if self._state is BreakerState.HALF_OPEN:
            self.on_failure(now)
            return
        self._failures = max(self._failures + 1, self.settings.failure_threshold)
        self._open(now)

    def on_abandoned(self) -> None:
        """A request's outcome will never be known (cancelled at a deadline): a probe may go out again."""
        self._probing = False

    def _open(self, now: float) -> None:
        if self._state is BreakerState.CLOSED:
            self.opened += 1
        self._state, self._open_until, self._probing = BreakerState.OPEN, now + self._cooldown_s, False
