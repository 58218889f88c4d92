"""An exporter around another: a few retries with backoff and Retry-After, behind a circuit breaker."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from extension.export.breaker import BreakerState, CircuitBreaker
from extension.export.otlp import ExportResult, ItemExporter
from extension.export.retry import RetryPolicy, backoff, retry_after_s

T = TypeVar("T")


class ResilientExporter(Generic[T]):
    """Same `export(items, *, deadline)` as the exporter it wraps (spans or metric windows), so the pipeline
    needs no other path.

    Per export: at most `policy.max_retries` retries of a retryable outcome, each after a full-jitter
    backoff or the collector's Retry-After, whichever is longer, and only if that wait is short
    (`policy.max_wait_s`) and the retry can start before the deadline; otherwise the retryable result goes
    back and the pipeline requeues the spans for the next flush (which a Retry-After holds back until then).
    A request that timed out is not retried inline: a hanging collector would cost one whole timeout per
    retry. Before every request the circuit breaker is asked; an open circuit, or a Retry-After that
    has not passed, refuses at once without touching the network (`attempts=0`, retryable).

    `closing()` marks the last flush (SHUTDOWN): spans left in the buffer afterwards are lost, so the
    breaker and an unexpired Retry-After no longer hold back its requests.
    """

    def __init__(
        self,
        inner: ItemExporter[T],
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,  # spreads retries; no secret depends on it
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._clock = clock
        self._wall = wall
        self._jitter = jitter
        self._sleep = sleep
        self._not_before = 0.0  # a Retry-After that outlived its flush holds later flushes back until then
        self._closing = False

    def closing(self) -> None:
        """From now on every export is a last chance: ignore the breaker and an unexpired Retry-After."""
        self._closing = True

    async def export(self, items: Sequence[T], *, deadline: float | None) -> ExportResult:
        started = self._clock()
        if not items:
            return ExportResult(ok=True, items=0, duration_s=0.0, attempts=0)
        attempts, result = 0, None
        while True:
            refusal = self._refusal(items, started)
            if refusal is not None:  # after a real answer, that answer says more than the refusal
                return refusal if result is None else self._with(result, attempts, started)
            try:
                result = await self._inner.export(items, deadline=deadline)
            except asyncio.CancelledError:
                self.breaker.on_abandoned()
                raise
            attempts += result.attempts
            self._observe(result)
            if result.ok or not result.retryable or result.timed_out or result.attempts == 0:
                return self._with(result, attempts, started)
            if attempts > self.policy.max_retries:
                return self._with(result, attempts, started)
            delay_s = self._delay_s(result, attempts - 1)
            if delay_s > self.policy.max_wait_s or (
                    deadline is not None and self._clock() + delay_s + self.policy.min_attempt_s > deadline):
                return self._with(result, attempts, started)  # requeued: it leaves with the next flush
            await self._sleep(delay_s)

    def _refusal(self, items: Sequence[T], started: float) -> ExportResult | None:
        now = self._clock()
        if self._closing:
            return None
        if now < self._not_before:
            reason = f"throttled by the collector: retry after {self._not_before - now:.3g} s"
        elif self.breaker.allow(now):
            return None
        else:
            reopens_at = self.breaker.reopens_at() or now
            reason = f"circuit open after repeated failures: next probe in {max(0.0, reopens_at - now):.3g} s"
        return ExportResult(ok=False, items=len(items), duration_s=now - started, error=reason, retryable=True,
                            attempts=0)

    def _observe(self, result: ExportResult) -> None:
        now = self._clock()
        if result.attempts == 0:  # nothing was sent: says nothing about the collector
            if self.breaker.state is BreakerState.HALF_OPEN:
                self.breaker.on_abandoned()
            return
        if result.ok or not result.retryable or result.status == 429:
            self.breaker.on_success()  # it answered: it is up, even if it refused or throttled
        elif result.timed_out:
            self.breaker.on_timeout(now)
        else:
            self.breaker.on_failure(now)
        if result.status == 429:
            wait_s = retry_after_s(result.retry_after, now_wall=self._wall())
            if wait_s is not None:
                self._not_before = max(self._not_before, now + wait_s)

    def _delay_s(self, result: ExportResult, retry: int) -> float:
        jittered = backoff(retry, base_s=self.policy.base_s, cap_s=self.policy.cap_s, random=self._jitter)
        asked = retry_after_s(result.retry_after, now_wall=self._wall()) if result.status == 429 else None
        return jittered if asked is None else max(jittered, asked)

    def _with(self, result: ExportResult, attempts: int, started: float) -> ExportResult:
        return dataclasses.replace(result, attempts=attempts, duration_s=self._clock() - started)
