"""The retry schedule (pure) and the resilient exporter around a scripted one, on a fake clock."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extension.export.breaker import BreakerSettings, BreakerState, CircuitBreaker
from extension.export.otlp import ExportResult
from extension.export.resilient import ResilientExporter
from extension.export.retry import (
    MAX_RETRY_AFTER_S,
    RETRYABLE_STATUS,
    RetryPolicy,
    backoff,
    is_retryable_status,
    retry_after_s,
)
from extension.telemetry import Resource, SpanData

NOW_WALL = 1_736_208_000.0  # 2025-01-07T00:00:00Z

# --- the schedule ------------------------------------------------------------------------------


def test_retryable_statuses_and_no_answer() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRYABLE_STATUS
    assert is_retryable_status(None)  # a connection error
    assert all(is_retryable_status(status) for status in (429, 502, 503, 504))
    assert not any(is_retryable_status(status) for status in (200, 400, 401, 404, 413, 500))


def test_backoff_doubles_its_ceiling_up_to_the_cap() -> None:
    ceilings = [backoff(attempt, base_s=0.1, cap_s=1.0, random=lambda: 0.999999) for attempt in range(6)]

    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], rel=1e-5)
    assert backoff(3, base_s=0.1, cap_s=1.0, random=lambda: 0.0) == 0.0  # full jitter reaches down to 0


@settings(max_examples=500)
@given(attempt=st.integers(min_value=-5, max_value=10_000), base_s=st.floats(0.0, 10.0),
       cap_s=st.floats(0.0, 60.0), draw=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_stays_within_full_jitter_bounds(attempt: int, base_s: float, cap_s: float, draw: float) -> None:
    delay = backoff(attempt, base_s=base_s, cap_s=cap_s, random=lambda: draw)

    assert 0.0 <= delay <= min(cap_s, base_s * 2 ** max(0, min(attempt, 32)))


@pytest.mark.parametrize(("header", "expected"), [
    ("0", 0.0),
    ("7", 7.0),
    (" 12 ", 12.0),
    ("3600", MAX_RETRY_AFTER_S),  # not believed past the cap
    ("Tue, 07 Jan 2025 00:00:30 GMT", 30.0),  # IMF-fixdate
    ("Tuesday, 07-Jan-25 00:00:05 GMT", 5.0),  # RFC 850
    ("Tue Jan  7 00:00:10 2025", 10.0),  # asctime: no zone, GMT by definition
    ("Mon, 06 Jan 2025 23:59:00 GMT", 0.0),  # already past
    (None, None),
    ("", None),
    ("soon", None),
    ("-5", None),
    ("1.5", None),
    ("١٢", None),  # Arabic-Indic digits are digits to str.isdigit, not to HTTP
])
def test_retry_after_reads_delta_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    assert retry_after_s(header, now_wall=NOW_WALL) == expected


@settings(max_examples=500)
@given(st.text())
def test_retry_after_never_raises_and_stays_within_bounds(header: str) -> None:
    wait = retry_after_s(header, now_wall=NOW_WALL)

    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S


# --- the resilient exporter --------------------------------------------------------------------


@dataclass
class FakeTime:
    """A monotonic clock that only moves when something sleeps or an export takes time."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return NOW_WALL + self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class ScriptedExporter:
    """Answers with `outcomes` in turn (the last one forever); each answer takes `took_s` on the fake clock."""

    time: FakeTime
    outcomes: list[ExportResult]
    took_s: float = 0.01
    calls: list[float] = field(default_factory=list)  # the deadline of each call
    hang: bool = False

    async def export(self, spans: Sequence[SpanData], *, deadline: float | None) -> ExportResult:
        self.calls.append(deadline if deadline is not None else -1.0)
        if self.hang:
            await asyncio.Event().wait()
        self.time.now += self.took_s
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        return outcome


def spans(count: int = 2) -> list[SpanData]:
    resource = Resource({"service.name": "fn"})
    return [SpanData(name=f"s{i}", kind="internal", trace_id=1, span_id=i + 1, parent_span_id=None,
                      parent_is_remote=False, start_unix_nano=0, end_unix_nano=1, attributes={}, error=None,
                      resource=resource) for i in range(count)]


def ok() -> ExportResult:
    return ExportResult(ok=True, items=2, duration_s=0.01, status=200)


def refused(status: int | None = 503, *, retry_after: str | None = None, timed_out: bool = False) -> ExportResult:
    retryable = status is None or status in RETRYABLE_STATUS
    return ExportResult(ok=False, items=2, duration_s=0.01, status=status, error=f"HTTP {status}",
                        retryable=retryable, retry_after=retry_after, timed_out=timed_out)


def resilient(time: FakeTime, inner: ScriptedExporter, *, threshold: int = 3,
              policy: RetryPolicy | None = None) -> ResilientExporter:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=threshold, cooldown_s=1.0))
    return ResilientExporter(inner, policy=policy, breaker=breaker, clock=time, wall=time.wall,
                             jitter=lambda: 0.5, sleep=time.sleep)


async def test_a_success_is_one_attempt() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [ok()])

    result = await resilient(time, inner).export(spans(), deadline=time.now + 5)

    assert result.ok and result.attempts == 1 and result.retries == 0 and time.slept == []


async def test_retryable_failures_are_retried_with_jittered_backoff() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503), refused(None), ok()])

    result = await resilient(time, inner).export(spans(), deadline=time.now + 5)

    assert result.ok and result.attempts == 3 and result.retries == 2
    assert time.slept == pytest.approx([0.05, 0.1])  # half of 0.1 s, then half of 0.2 s
    assert result.duration_s == pytest.approx(0.03 + 0.15)


async def test_at_most_two_retries_then_the_spans_go_back() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(502)])

    result = await resilient(time, inner, threshold=10).export(spans(), deadline=time.now + 5)

    assert not result.ok and result.retryable and result.status == 502
    assert result.attempts == 3 and len(inner.calls) == 3


@pytest.mark.parametrize("status", [400, 401, 413, 500])
async def test_a_refusal_for_good_is_not_retried(status: int) -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(status)])

    result = await resilient(time, inner).export(spans(), deadline=time.now + 5)

    assert not result.retryable and result.attempts == 1


async def test_a_timeout_is_not_retried_inline() -> None:
    """A hanging collector would cost a whole timeout per retry; the batch waits in the buffer instead."""
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(None, timed_out=True)], took_s=0.5)

    result = await resilient(time, inner).export(spans(), deadline=time.now + 5)

    assert result.timed_out and result.retryable and result.attempts == 1 and time.slept == []


async def test_no_retry_that_cannot_start_before_the_deadline() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503), ok()])

    result = await resilient(time, inner).export(spans(), deadline=time.now + 0.08)

    # 0.01 s for the first attempt + 0.05 s backoff + 0.05 s minimum attempt > 0.08 s: stop, hand back.
    assert not result.ok and result.retryable and result.attempts == 1 and time.slept == []


async def test_every_attempt_gets_the_flush_deadline() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503), ok()])

    await resilient(time, inner).export(spans(), deadline=142.0)

    assert inner.calls == [142.0, 142.0]


async def test_a_long_retry_after_is_left_to_a_later_flush_not_waited_out_inline() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(429, retry_after="2"), ok()])
    exporter = resilient(time, inner)

    first = await exporter.export(spans(), deadline=time.now + 5)
    time.now += 1.5
    held = await exporter.export(spans(), deadline=time.now + 5)
    time.now += 0.6
    after = await exporter.export(spans(), deadline=time.now + 5)

    assert not first.ok and first.retryable and first.attempts == 1 and time.slept == []  # nothing billed
    assert not held.ok and held.attempts == 0  # the collector asked for 2 s
    assert after.ok and len(inner.calls) == 2


async def test_retry_after_as_an_http_date() -> None:
    time = FakeTime()
    moment = email.utils.formatdate(time.wall() + 1.01 + 3, usegmt=True)  # the answer comes 10 ms later
    inner = ScriptedExporter(time, [refused(429, retry_after=moment), ok()])
    exporter = resilient(time, inner)

    await exporter.export(spans(), deadline=time.now + 10)
    time.now += 1.5
    held = await exporter.export(spans(), deadline=time.now + 10)
    time.now += 3.0
    after = await exporter.export(spans(), deadline=time.now + 10)

    assert held.attempts == 0 and after.ok and time.slept == []


async def test_a_retry_after_past_the_deadline_holds_later_flushes_back() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(429, retry_after="30"), ok()])
    exporter = resilient(time, inner)

    first = await exporter.export(spans(), deadline=time.now + 1)
    time.now += 10
    held = await exporter.export(spans(), deadline=time.now + 1)
    time.now += 21
    after = await exporter.export(spans(), deadline=time.now + 1)

    assert not first.ok and first.status == 429 and first.attempts == 1 and time.slept == []
    assert not held.ok and held.retryable and held.attempts == 0 and "retry after" in (held.error or "")
    assert after.ok
    assert len(inner.calls) == 2  # nothing was sent while the collector's Retry-After ran
    assert exporter.breaker.state is BreakerState.CLOSED  # throttling says the collector is up


async def test_the_breaker_opens_and_refuses_without_sending() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503)])
    exporter = resilient(time, inner, threshold=3)

    first = await exporter.export(spans(), deadline=time.now + 5)
    second = await exporter.export(spans(), deadline=time.now + 5)

    assert first.attempts == 3 and exporter.breaker.state is BreakerState.OPEN
    assert second.attempts == 0 and second.retryable and second.duration_s == 0.0
    assert "circuit open" in (second.error or "")
    assert len(inner.calls) == 3


async def test_the_breaker_stops_retries_within_a_flush() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503)])

    result = await resilient(time, inner, threshold=2).export(spans(), deadline=time.now + 5)

    # The second failure opened the circuit: the last retry is refused and the real answer reported.
    assert result.status == 503 and result.attempts == 2 and len(inner.calls) == 2


async def test_after_the_cool_down_one_probe_closes_the_circuit() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503), refused(503), refused(503), ok()])
    exporter = resilient(time, inner)
    await exporter.export(spans(), deadline=time.now + 5)
    time.now += 1.0

    probe = await exporter.export(spans(), deadline=time.now + 5)

    assert probe.ok and probe.attempts == 1 and exporter.breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_is_not_retried() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503)])
    exporter = resilient(time, inner)
    await exporter.export(spans(), deadline=time.now + 5)
    time.now += 1.0

    probe = await exporter.export(spans(), deadline=time.now + 5)

    assert probe.attempts == 1 and exporter.breaker.state is BreakerState.OPEN
    assert exporter.breaker.cooldown_s == 2.0


async def test_the_last_flush_ignores_the_breaker_and_retry_after() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503), refused(503), refused(503), ok()])
    exporter = resilient(time, inner)
    await exporter.export(spans(), deadline=time.now + 5)
    assert exporter.breaker.state is BreakerState.OPEN

    exporter.closing()
    last = await exporter.export(spans(), deadline=time.now + 1)

    assert last.ok and last.attempts == 1


async def test_a_cancelled_probe_lets_the_next_flush_probe() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [refused(503)])
    exporter = resilient(time, inner)
    await exporter.export(spans(), deadline=time.now + 5)
    time.now += 1.0
    inner.hang = True
    probe = asyncio.create_task(exporter.export(spans(), deadline=time.now + 5))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    inner.hang, inner.outcomes = False, [ok()]

    again = await exporter.export(spans(), deadline=time.now + 5)

    assert again.ok and again.attempts == 1


async def test_nothing_sent_says_nothing_about_the_collector() -> None:
    time = FakeTime()
    unsent = ExportResult(ok=False, items=2, duration_s=0.0, error="deadline passed before sending", retryable=True,
                          attempts=0)
    inner = ScriptedExporter(time, [unsent])
    exporter = resilient(time, inner, threshold=1)

    result = await exporter.export(spans(), deadline=time.now + 5)

    assert result.attempts == 0 and len(inner.calls) == 1
    assert exporter.breaker.state is BreakerState.CLOSED


async def test_no_spans_no_request() -> None:
    time = FakeTime()
    inner = ScriptedExporter(time, [ok()])

    result = await resilient(time, inner).export([], deadline=time.now + 5)

    assert result.ok and result.attempts == 0 and inner.calls == []
