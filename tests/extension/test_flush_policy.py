"""The flush policy with a clock the tests control: parsing, switching up and down, the backup flush."""

from __future__ import annotations

import pytest

from extension.flush import (
    BACKUP_INTERVAL_S,
    BUSY_GAP_S,
    END_PLAN,
    IDLE_RESET_S,
    WARM_UP,
    FlushPolicy,
    FlushSetting,
    Plan,
    Strategy,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("end", FlushSetting(strategy=Strategy.END)),
        ("adaptive", FlushSetting()),
        ("adaptive,250", FlushSetting(strategy=Strategy.ADAPTIVE, interval_s=0.25)),
        ("periodic,2000", FlushSetting(strategy=Strategy.PERIODIC, interval_s=2.0)),
        (" Continuous, 500 ", FlushSetting(strategy=Strategy.CONTINUOUS, interval_s=0.5)),
    ],
)
def test_settings_parse(text: str, expected: FlushSetting) -> None:
    assert FlushSetting.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "often",
        "periodic",
        "continuous,",
        "end,100",
        "periodic,-5",
        "periodic,1.5",
        "periodic,0",
        "continuous,9999999",
    ],
)
def test_bad_settings_name_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"periodic|interval|takes no"):
        FlushSetting.parse(text)


def invoke_every(policy: FlushPolicy, gap_s: float, count: int, start: float = 0.0) -> tuple[list[Plan], float]:
    plans, now = [], start
    for _ in range(count):
        now += gap_s
        plans.append(policy.on_invoke(now))
    return plans, now


def test_adaptive_starts_with_end_and_moves_to_background_after_warm_up() -> None:
    policy = FlushPolicy(FlushSetting(), now=0.0)
    plans, _ = invoke_every(policy, 0.1, WARM_UP + 2)
    assert plans[:WARM_UP] == [END_PLAN] * WARM_UP  # the first gap is only seen at the second invocation
    assert policy.busy and not plans[-1].wait_runtime_done and not plans[-1].flush_at_end


def test_the_time_the_extension_itself_spends_does_not_count_as_a_gap() -> None:
    # A collector that takes 1.5 s makes every `end` invocation 1.5 s apart; the next INVOKE still comes the
    # moment the extension calls next: the function is busy, and should stop paying for the collector.
    policy, now = FlushPolicy(FlushSetting(), now=0.0), 0.0
    for _ in range(WARM_UP + 2):
        policy.on_invoke(now)
        now += 0.01 + 1.5  # the handler, then the slow export after runtimeDone
        policy.on_next(1.5)
    assert policy.busy


def test_a_long_handler_invoked_back_to_back_settles_instead_of_flapping() -> None:
    # 3 s handlers one after the other: under `end` the next INVOKE comes as soon as the extension is done;
    # in the background the extension calls next at once and the INVOKE comes when the handler is. The gaps
    # are the handler's either way, so the strategy must not switch back and forth between the two.
    policy, now, modes = FlushPolicy(FlushSetting(), now=0.0), 0.0, []
    for _ in range(40):
        plan = policy.on_invoke(now)
        modes.append(plan.wait_runtime_done)
        now += 3.0
        held_s = 0.03 if plan.wait_runtime_done else 0.0
        now += held_s
        policy.on_next(held_s)
    assert all(modes) and not policy.busy


def test_busy_mode_flushes_at_the_start_once_per_interval_without_blocking() -> None:
    policy = FlushPolicy(FlushSetting(interval_s=1.0), now=0.0)
    _, now = invoke_every(policy, 0.125, WARM_UP + 2)  # binary fractions: exact sums
    policy.on_flushed(now)
    plans, now = invoke_every(policy, 0.125, 20, start=now)
    started = [plan for plan in plans if plan.flush_at_start]
    assert started and all(not plan.await_start_flush for plan in started)
    # At most one start flush per interval, as long as each flush is reported back.
    assert plans.index(started[0]) == 7  # 8 x 0.125 s = the 1 s interval


def test_adaptive_goes_back_to_end_when_invocations_thin_out() -> None:
    policy = FlushPolicy(FlushSetting(), now=0.0)
    _, now = invoke_every(policy, 0.1, 20)
    assert policy.busy
    plans, _ = invoke_every(policy, 3 * BUSY_GAP_S, 6, start=now)  # below the idle reset, above 2x the threshold
    assert not policy.busy and plans[-1] == END_PLAN


def test_hysteresis_keeps_busy_mode_just_above_the_threshold() -> None:
    policy = FlushPolicy(FlushSetting(), now=0.0)
    _, now = invoke_every(policy, 0.1, 20)
    invoke_every(policy, 1.5 * BUSY_GAP_S, 10, start=now)
    assert policy.busy


def test_an_idle_gap_resets_at_once() -> None:
    policy = FlushPolicy(FlushSetting(), now=0.0)
    _, now = invoke_every(policy, 0.1, 20)
    assert policy.on_invoke(now + IDLE_RESET_S) == END_PLAN and not policy.busy
    plans, _ = invoke_every(policy, 0.1, WARM_UP - 1, start=now + IDLE_RESET_S)
    assert all(plan == END_PLAN for plan in plans)  # warming up again


def test_fixed_strategies() -> None:
    assert FlushPolicy(FlushSetting(strategy=Strategy.END), now=0).on_invoke(100) == END_PLAN
    continuous = FlushPolicy(FlushSetting(strategy=Strategy.CONTINUOUS, interval_s=0.5), now=0)
    assert continuous.on_invoke(10) == Plan()
    periodic = FlushPolicy(FlushSetting(strategy=Strategy.PERIODIC, interval_s=2), now=0)
    assert periodic.on_invoke(1) == Plan(flush_at_start=False, await_start_flush=True)
    assert periodic.on_invoke(2.5) == Plan(flush_at_start=True, await_start_flush=True)


def test_backup_flush_bounds_staleness() -> None:
    end = FlushPolicy(FlushSetting(strategy=Strategy.END), now=0)
    assert end.background_due_at() == BACKUP_INTERVAL_S
    end.on_flushed(42)
    assert end.background_due_at() == 42 + BACKUP_INTERVAL_S
    continuous = FlushPolicy(FlushSetting(strategy=Strategy.CONTINUOUS, interval_s=0.5), now=0)
    assert continuous.background_due_at() == 0.5
    slow = FlushPolicy(FlushSetting(strategy=Strategy.PERIODIC, interval_s=60), now=0)
    assert slow.background_due_at() == BACKUP_INTERVAL_S
