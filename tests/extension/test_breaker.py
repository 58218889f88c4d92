"""The circuit breaker: closed, open after consecutive failures, one probe per growing cool-down."""

from __future__ import annotations

import pytest

from extension.export.breaker import BreakerSettings, BreakerState, CircuitBreaker


def opened(now: float = 0.0, **settings: float) -> CircuitBreaker:
    breaker = CircuitBreaker(BreakerSettings(**settings))  # type: ignore[arg-type]
    for _ in range(breaker.settings.failure_threshold):
        breaker.on_failure(now)
    return breaker


def test_closed_until_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=3))
    breaker.on_failure(0.0)
    breaker.on_failure(0.0)
    assert breaker.state is BreakerState.CLOSED and breaker.allow(0.0)

    breaker.on_failure(0.0)

    assert breaker.state is BreakerState.OPEN and breaker.opened == 1  # type: ignore[comparison-overlap]
    assert not breaker.allow(0.5)
    assert breaker.reopens_at() == 1.0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=2))
    breaker.on_failure(0.0)
    breaker.on_success()
    breaker.on_failure(0.0)

    assert breaker.state is BreakerState.CLOSED


def test_after_the_cool_down_exactly_one_probe_goes_out() -> None:
    breaker = opened(cooldown_s=1.0)

    assert not breaker.allow(0.999)
    assert breaker.allow(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(1.0) and not breaker.allow(5.0)  # the probe is still out


def test_a_successful_probe_closes_the_circuit() -> None:
    breaker = opened()
    assert breaker.allow(1.0)

    breaker.on_success()

    assert breaker.state is BreakerState.CLOSED and breaker.allow(1.0) and breaker.allow(1.0)
    assert breaker.reopens_at() is None


def test_a_failed_probe_doubles_the_cool_down_up_to_the_cap() -> None:
    breaker = opened(cooldown_s=1.0, max_cooldown_s=5.0)
    now, cooldowns = 1.0, []
    for _ in range(5):
        assert breaker.allow(now)
        breaker.on_failure(now)
        reopens_at = breaker.reopens_at()
        assert reopens_at is not None
        cooldowns.append(reopens_at - now)
        now = reopens_at

    assert cooldowns == [2.0, 4.0, 5.0, 5.0, 5.0]
    assert breaker.opened == 1  # it never closed in between


def test_success_restores_the_first_cool_down() -> None:
    breaker = opened(cooldown_s=1.0)
    assert breaker.allow(1.0)
    breaker.on_failure(1.0)  # cool-down 2 s
    assert breaker.allow(3.0)
    breaker.on_success()
    for _ in range(3):
        breaker.on_failure(10.0)

    assert breaker.reopens_at() == 11.0 and breaker.opened == 2


def test_an_abandoned_probe_lets_another_go_out() -> None:
    """A probe cancelled at a deadline has no outcome: without this the circuit would stay half-open forever."""
    breaker = opened()
    assert breaker.allow(1.0)

    breaker.on_abandoned()

    assert breaker.allow(1.0)


def test_a_late_failure_while_open_extends_the_open_period() -> None:
    breaker = opened(cooldown_s=1.0)
    breaker.on_failure(0.5)  # a request that was already out when the circuit opened

    assert breaker.reopens_at() == 1.5


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(BreakerSettings(failure_threshold=0))


def test_a_timeout_opens_at_once_and_a_timed_out_probe_waits_longer() -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=3, cooldown_s=1.0))

    breaker.on_timeout(0.0)  # one whole timeout is evidence enough: the next request would wait as long

    assert breaker.state is BreakerState.OPEN and not breaker.allow(0.5)
    assert breaker.allow(1.0)  # the probe
    breaker.on_timeout(1.5)
    assert breaker.state is BreakerState.OPEN and breaker.reopens_at() == 3.5  # cool-down doubled
