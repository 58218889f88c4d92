"""The extension, installed as a layer, in the local sandbox beside real awslambdaric functions, exporting to
a real OTLP receiver: what arrives is what the platform events say."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from support import EXAMPLES, SettingsFactory

from sandbox import platform_events as pe
from sandbox.otlp_receiver import FaultMode, OTLPReceiver, ReceivedSpan
from sandbox.runner import LocalLambda

ROOT_ID = "5759e988bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
TRACE = f"Root=1-{ROOT_ID[:8]}-{ROOT_ID[8:]};Parent={PARENT};Sampled=1"


class Output:
    """Collects what the processes print, to check the extension's own log lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, source: str, line: str) -> None:
        self.lines.append((source, line))

    def of_extension(self) -> str:
        return "\n".join(line for source, line in self.lines if source.startswith("extension-"))


@asynccontextmanager
async def sandbox_with_extension(make_settings: SettingsFactory, layer: Path, work_dir: Path,
                                 receiver: OTLPReceiver, output: Output, **overrides: object,
                                 ) -> AsyncIterator[LocalLambda]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}
    env.update(overrides.pop("env", {}))  # type: ignore[arg-type]
    settings = make_settings(function_dir=EXAMPLES, handler="app.mixed", function_name="shop", layer_dir=layer,
                             env=env, **overrides)
    async with LocalLambda(settings, work_dir=work_dir, on_output=output) as sandbox:
        yield sandbox


def invocation_spans(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """The SERVER span of each invocation; an invocation with two of them fails the test."""
    servers = [s for s in spans if s.span.kind == s.span.SPAN_KIND_SERVER]
    by_request = {str(s.attributes["faas.invocation_id"]): s for s in servers}
    assert len(by_request) == len(servers), "an invocation has more than one SERVER span"
    return by_request


def event_time_ns(event: pe.TelemetryEvent) -> int:
    """The event's time as the extension read it from the wire (milliseconds)."""
    moment = dt.datetime.fromisoformat(pe.iso_time(event.time_s).replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


async def test_spans_of_every_invocation_arrive_with_the_platform_times(
        make_settings: SettingsFactory, built_layer: Path, work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output) as sandbox:
            records = [await sandbox.invoke(b'{"action": "succeed"}', trace_header=TRACE) for _ in range(5)]
            # End-of-invocation flush: the spans are at the receiver before the environment froze.
            assert set(invocation_spans(receiver.spans())) == {r.request_id for r in records}
            history = sandbox.hub.platform_history
        spans = receiver.spans()
    by_request = invocation_spans(spans)
    def of_type(kind: str) -> dict[str, pe.TelemetryEvent]:
        return {e.record["requestId"]: e for e in history if e.type == kind and isinstance(e.record, dict)}

    starts, dones = of_type("platform.start"), of_type("platform.runtimeDone")
    for record in records:
        span = by_request[record.request_id]
        assert span.name == "shop"
        assert span.trace_id == ROOT_ID and span.parent_span_id == PARENT
        assert span.span.start_time_unix_nano == event_time_ns(starts[record.request_id])
        # runtimeDone's durationMs (microseconds) is finer than its millisecond timestamp: the span ends by it.
        duration_ms = dones[record.request_id].record["metrics"]["durationMs"]  # type: ignore[index]
        assert span.span.end_time_unix_nano == span.span.start_time_unix_nano + round(duration_ms * 1_000_000)
        assert span.attributes["faas.coldstart"] is (record is records[0])
        assert span.resource["service.name"] == "shop" and span.resource["cloud.provider"] == "aws"
        children = {s.name for s in spans if s.parent_span_id == span.span_id}
        assert {"responseLatency", "responseDuration", "runtimeOverhead", "report"} <= children
    # Every report arrived before SHUTDOWN completed, the last invocation's included.
    reports = [s for s in spans if s.name == "report"]
    assert len(reports) == 5
    assert all(s.attributes["aws.lambda.billed_duration_ms"] >= 1 for s in reports)  # type: ignore[operator]
    [init] = [s for s in spans if s.name == "init"]
    assert init.trace_id == ROOT_ID and init.parent_span_id == by_request[records[0].request_id].span_id
    assert '"event":"flushed"' in output.of_extension()


async def test_error_and_timeout_statuses(make_settings: SettingsFactory, built_layer: Path,
                                          work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output,
                                          timeout_s=1.0) as sandbox:
            failed = await sandbox.invoke(b'{"action": "fail"}', trace_header=TRACE)
            timed_out = await sandbox.invoke(b'{"action": "time_out"}', trace_header=TRACE)
            after = await sandbox.invoke(b'{"action": "succeed"}', trace_header=TRACE)
        by_request = invocation_spans(receiver.spans())
    assert (failed.status, timed_out.status, after.status) == ("error", "timeout", "success")
    error_span, timeout_span = by_request[failed.request_id], by_request[timed_out.request_id]
    assert error_span.span.status.code == error_span.span.status.STATUS_CODE_ERROR
    assert error_span.span.status.message == failed.error_type
    assert timeout_span.span.status.code == timeout_span.span.status.STATUS_CODE_ERROR
    assert timeout_span.span.status.message == "Sandbox.Timedout"
    # The timeout reset the environment: the next invocation is a cold start of a new extension process.
    assert by_request[after.request_id].attributes["faas.coldstart"] is True


async def test_a_hanging_collector_never_holds_the_function(make_settings: SettingsFactory, built_layer: Path,
                                                            work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        receiver.mode = FaultMode.HANG
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output,
                                          timeout_s=2.0) as sandbox:
            records = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(3)]
            started = time.monotonic()
            shutdown = await sandbox.shutdown()
            shutdown_s = time.monotonic() - started
    assert [r.status for r in records] == ["success"] * 3
    # Each export gives up after OTEL_EXPORTER_OTLP_TIMEOUT (500 ms), well inside the 2 s deadline.
    assert all(r.post_runtime_extension_ms < 1500 for r in records)
    [exit_] = shutdown.extensions
    assert exit_.exited_before_deadline and exit_.returncode == 0
    assert shutdown_s < 2.0
    assert '"event":"export_failed"' in output.of_extension()


async def test_spans_that_failed_to_export_leave_with_a_later_flush(make_settings: SettingsFactory,
                                                                   built_layer: Path, work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        receiver.mode = FaultMode.FAIL_503
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output) as sandbox:
            first = await sandbox.invoke(b'{"action": "succeed"}')
            receiver.mode = FaultMode.OK
            second = await sandbox.invoke(b'{"action": "succeed"}')
        received = invocation_spans(receiver.spans())
    assert {first.request_id, second.request_id} <= set(received)
    assert receiver.refused_count >= 1


async def test_a_bad_setting_leaves_the_function_running(make_settings: SettingsFactory, built_layer: Path,
                                                         work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output,
                                          env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) as sandbox:
            records = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(2)]
            shutdown = await sandbox.shutdown()
        assert not receiver.spans()
    assert [r.status for r in records] == ["success"] * 2
    assert shutdown.extensions[0].exited_before_deadline
    logged = output.of_extension()
    assert '"event":"config_invalid"' in logged and "OTEL_EXPORTER_OTLP_PROTOCOL" in logged


async def test_an_unreachable_collector_does_not_hurt(make_settings: SettingsFactory, built_layer: Path,
                                                      work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        closed_port = receiver.port
    # The receiver is gone: nothing listens on its port any more.
    async with OTLPReceiver(port=0) as unused:
        unused_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
        async with sandbox_with_extension(make_settings, built_layer, work_dir, unused, output,
                                          env=unused_env) as sandbox:
            record = await sandbox.invoke(b'{"action": "succeed"}')
            shutdown = await sandbox.shutdown()
    assert record.status == "success" and record.post_runtime_extension_ms < 1000
    assert shutdown.extensions[0].exited_before_deadline


def metric_points(receiver: OTLPReceiver) -> dict[str, list[object]]:
    """Every data point the receiver got, by metric name, in arrival order."""
    points: dict[str, list[object]] = {}
    for metric in receiver.metrics():
        data = getattr(metric.metric, metric.kind or "")
        points.setdefault(metric.name, []).extend(data.data_points)
    return points


async def test_platform_and_health_metrics_equal_what_the_platform_reported(
        make_settings: SettingsFactory, built_layer: Path, work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output) as sandbox:
            for action in ("succeed", "fail", "succeed"):
                await sandbox.invoke(f'{{"action": "{action}"}}'.encode())
            history = sandbox.hub.platform_history
        points = metric_points(receiver)
        spans = receiver.spans()
    reports = [e.record for e in history if e.type == "platform.report" and isinstance(e.record, dict)]
    assert len(reports) == 3
    # Cumulative by default: the last point of each sum is the total of the environment's life.
    assert {name: points[name][-1].as_int or points[name][-1].as_double  # type: ignore[attr-defined]
            for name in ("faas.invocations", "faas.errors", "faas.coldstarts")} == {
        "faas.invocations": 2, "faas.errors": 1, "faas.coldstarts": 1}
    [*_, durations] = points["faas.invoke_duration"]
    assert durations.count == 3  # type: ignore[attr-defined]
    expected_s = sum(report["metrics"]["durationMs"] for report in reports) / 1000
    assert abs(durations.sum - expected_s) < 1e-9  # type: ignore[attr-defined]
    [*_, memory] = points["faas.mem_usage"]
    assert memory.max == max(r["metrics"]["maxMemoryUsedMB"] for r in reports) * 1024 * 1024  # type: ignore[attr-defined]
    # The extension's own health: what it says it exported is what arrived before its last window.
    [*_, exported] = points["lambda_extension.spans.exported"]
    assert 0 < exported.as_int <= len(spans)  # type: ignore[attr-defined]
    assert points["lambda_extension.spans.dropped"][-1].as_int == 0  # type: ignore[attr-defined]
    assert points["lambda_extension.breaker.state"][-1].as_int == 0  # type: ignore[attr-defined]


async def test_function_logs_join_their_invocation_trace(make_settings: SettingsFactory, built_layer: Path,
                                                         work_dir: Path) -> None:
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output) as sandbox:
            records = [await sandbox.invoke(b'{"action": "succeed"}', trace_header=TRACE) for _ in range(3)]
        servers = invocation_spans(receiver.spans())
        logs = receiver.log_records()
    for record in records:
        [line] = [log for log in logs if log.body == f"handling request {record.request_id}"]
        span = servers[record.request_id]
        assert (line.trace_id, line.span_id) == (span.trace_id, span.span_id)
        assert line.record.severity_text == "INFO" and line.record.severity_number == 9
        assert line.attributes["faas.invocation_id"] == record.request_id
        assert line.resource["service.name"] == "shop"


async def test_ten_thousand_lines_are_delivered_or_counted(make_settings: SettingsFactory, built_layer: Path,
                                                           work_dir: Path) -> None:
    output = Output()
    env = {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative"}
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output, env=env,
                                          timeout_s=10.0) as sandbox:
            record = await sandbox.invoke(b'{"action": "chatty", "lines": 10000}')
        lines = [log.body for log in receiver.log_records() if str(log.body).startswith("log line ")]
        points = metric_points(receiver)
    assert record.status == "success"
    assert len(set(lines)) == len(lines)  # none twice
    dropped = points["lambda_extension.log_records.dropped"][-1].as_int  # type: ignore[attr-defined]
    lost = points["lambda_extension.log_records.lost_by_platform"][-1].as_int  # type: ignore[attr-defined]
    # What did not arrive, the extension counted: dropped from its full buffer, or never delivered by Lambda.
    assert len(lines) + dropped + lost == 10_000
    assert len(lines) >= 4096  # at least a full buffer's worth arrived


async def test_its_own_lines_do_not_come_back_as_log_records(make_settings: SettingsFactory, built_layer: Path,
                                                             work_dir: Path) -> None:
    # With every extension's lines subscribed, ours come back to us too: exported, each flush's line would make the
    # next flush due, for ever. The sandbox runs no other extension, so no `extension` record may arrive at all.
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        async with sandbox_with_extension(make_settings, built_layer, work_dir, receiver, output,
                                          env={"OTEL_LAMBDA_EXTENSION_LOGS": "true"}) as sandbox:
            records = [await sandbox.invoke(b'{"action": "succeed"}') for _ in range(3)]
        from_extensions = [log for log in receiver.log_records()
                           if log.attributes["aws.lambda.log.source"] == "extension"]
        from_function = [log for log in receiver.log_records() if log.attributes["aws.lambda.log.source"] == "function"]
    assert [r.status for r in records] == ["success"] * 3
    assert '"event":"flushed"' in output.of_extension()
    assert from_function and from_extensions == []
