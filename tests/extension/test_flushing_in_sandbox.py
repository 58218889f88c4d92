"""Flush strategies in the sandbox: freezes during exports, connections reset after a freeze, and 100
invocations where every span arrives exactly once per expectation."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from support import EXAMPLES, SettingsFactory

from sandbox.otlp_receiver import FaultMode, OTLPReceiver, ReceivedSpan
from sandbox.runner import LocalLambda

PHASES = ("responseLatency", "responseDuration", "runtimeOverhead", "report", "extensionOverhead")


def quiet(source: str, line: str) -> None:
    pass


def settings_for(make_settings: SettingsFactory, layer: Path, receiver: OTLPReceiver, flush: str,
                 **env: str) -> object:
    return make_settings(function_dir=EXAMPLES, handler="app.mixed", function_name="busy", layer_dir=layer,
                         timeout_s=5.0, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                             "OTEL_LAMBDA_FLUSH": flush, **env})


def spans_by_request(spans: list[ReceivedSpan]) -> dict[str, Counter[str]]:
    """Span names per invocation: the server span's request id, its children and grandchildren."""
    servers = {s.span_id: str(s.attributes["faas.invocation_id"]) for s in spans
               if s.span.kind == s.span.SPAN_KIND_SERVER}
    parents = {s.span_id: s.parent_span_id for s in spans}
    found: dict[str, Counter[str]] = {}
    for span in spans:
        node = span.span_id
        while node in parents and node not in servers:
            node = parents[node]
        if node in servers:
            found.setdefault(servers[node], Counter())[span.name] += 1
    return found


def assert_exactly_once(spans: list[ReceivedSpan], request_ids: list[str], *, max_copies: int = 1) -> None:
    """Every span of every invocation arrived, and none more than `max_copies` times."""
    found = spans_by_request(spans)
    assert sorted(found) == sorted(request_ids)
    for request_id in request_ids:
        counts = found[request_id]
        assert all(1 <= counts[name] <= max_copies for name in ("busy", *PHASES)), (request_id, counts)
    assert 1 <= sum(s.name == "init" for s in spans) <= max_copies


# A background export still in flight at SHUTDOWN is cancelled and sent again, since its outcome is unknown: a
# strategy that flushes in the background may deliver a batch twice, never more, never not at all.
@pytest.mark.parametrize(("flush", "max_copies"), [("end", 1), ("adaptive", 2), ("periodic,100", 2),
                                                   ("continuous,50", 2)])
async def test_hundred_invocations_with_freezes_arrive_exactly(make_settings: SettingsFactory, built_layer: Path,
                                                               work_dir: Path, flush: str, max_copies: int) -> None:
    async with OTLPReceiver(port=0) as receiver:
        settings = settings_for(make_settings, built_layer, receiver, flush)
        async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:  # type: ignore[arg-type]
            records = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(100)]
        assert all(r.status == "success" for r in records)
        assert_exactly_once(receiver.spans(), [r.request_id for r in records], max_copies=max_copies)


async def test_an_export_frozen_in_flight_completes_after_the_thaw(make_settings: SettingsFactory,
                                                                   built_layer: Path, work_dir: Path) -> None:
    async with OTLPReceiver(port=0) as receiver:
        settings = settings_for(make_settings, built_layer, receiver, "continuous,50")
        async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:  # type: ignore[arg-type]
            first = await sandbox.invoke(b'{"action": "succeed"}')
            receiver.mode = FaultMode.HANG
            second = await sandbox.invoke(b'{"action": "succeed", "sleep_ms": 200}')
            await receiver.wait_for_held(1, timeout_s=5)
            assert sandbox.environment.frozen or await _frozen_soon(sandbox)
            receiver.mode = FaultMode.OK  # the collector answers while the extension is frozen
            third = await sandbox.invoke(b'{"action": "succeed"}')
        records = [first, second, third]
        found = spans_by_request(receiver.spans())
    # Nothing lost; a batch whose answer was read only after the thaw may arrive twice, never zero times.
    assert set(found) == {r.request_id for r in records}
    assert all(found[r.request_id]["busy"] >= 1 for r in records)


async def test_a_connection_reset_after_a_freeze_is_sent_again(make_settings: SettingsFactory, built_layer: Path,
                                                               work_dir: Path) -> None:
    async with OTLPReceiver(port=0) as receiver:
        settings = settings_for(make_settings, built_layer, receiver, "end")
        async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:  # type: ignore[arg-type]
            first = await sandbox.invoke(b'{"action": "succeed"}')
            await asyncio.sleep(0.2)  # frozen, with a kept-alive connection to the collector
            receiver.set_mode(FaultMode.RESET, next_requests=1)
            second = await sandbox.invoke(b'{"action": "succeed"}')
            third = await sandbox.invoke(b'{"action": "succeed"}')
        assert receiver.refused_count == 1
        assert_exactly_once(receiver.spans(), [first.request_id, second.request_id, third.request_id])


async def _frozen_soon(sandbox: LocalLambda) -> bool:
    for _ in range(100):
        if sandbox.environment.frozen:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_failing_collector_is_left_alone_until_it_recovers(make_settings: SettingsFactory,
                                                                  built_layer: Path, work_dir: Path) -> None:
    async with OTLPReceiver(port=0) as receiver:
        receiver.mode = FaultMode.FAIL_503
        settings = settings_for(make_settings, built_layer, receiver, "end")
        async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:  # type: ignore[arg-type]
            failing = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(10)]
            # Without the breaker every flush would send a request and retry it twice: 30 requests.
            asked_while_failing = receiver.refused_count
            receiver.mode = FaultMode.OK
            await asyncio.sleep(4.5)  # past the breaker's cool-down, however often its probes failed
            recovered = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(2)]
            # Before SHUTDOWN: the buffered spans left with the first flush after the recovery.
            before_shutdown = spans_by_request(receiver.spans())
        records = failing + recovered
        assert_exactly_once(receiver.spans(), [r.request_id for r in records])
    assert asked_while_failing <= 6
    assert set(before_shutdown) >= {r.request_id for r in failing}


async def test_a_hanging_collector_is_asked_again_only_after_a_cool_down(make_settings: SettingsFactory,
                                                                        built_layer: Path, work_dir: Path) -> None:
    async with OTLPReceiver(port=0) as receiver:
        receiver.mode = FaultMode.HANG
        # The default 10 s export timeout is far longer than the function's: the deadline cuts every flush.
        settings = make_settings(function_dir=EXAMPLES, handler="app.mixed", function_name="busy",
                                 layer_dir=built_layer, timeout_s=1.0,
                                 env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_LAMBDA_FLUSH": "end"})
        async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:  # type: ignore[arg-type]
            records = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(6)]
            hung = receiver.held  # requests that reached the collector and were never answered
            receiver.mode = FaultMode.OK  # back for SHUTDOWN: what waited in the buffer leaves then
        assert all(r.status == "success" for r in records)
        assert_exactly_once(receiver.spans(), [r.request_id for r in records], max_copies=2)
    # The first flush waits out the deadline; the breaker then spares the next ones, but for a probe a second
    # later. Without it each of the six flushes would hang until its deadline.
    assert hung <= 2
