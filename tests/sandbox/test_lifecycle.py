"""The sandbox runs a real awslambdaric function and a test extension through INIT, INVOKE and SHUTDOWN
in the documented order, freezes between invocations and enforces the shutdown deadline."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support import EXAMPLES, MINIMAL_LAYER, SettingsFactory, read_log, telemetry_events

from sandbox.runner import LocalLambda

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
SCRIPTED_FUNCTIONS = Path(__file__).parent / "functions"


def ext_env(log: Path, **extra: str) -> dict[str, str]:
    return {"TEST_EXT_LOG": str(log), "TEST_FN_LOG": str(log), **extra}


def quiet(source: str, line: str) -> None:
    pass


async def test_twenty_invocations_with_freezes_and_shutdown(make_settings: SettingsFactory, tmp_path: Path,
                                                            work_dir: Path) -> None:
    """The 'done when' run: init, 20 invokes of a real awslambdaric function, shutdown; all documented."""
    log = tmp_path / "ext.jsonl"
    settings = make_settings(function_dir=EXAMPLES, handler="app.succeed", layer_dir=MINIMAL_LAYER,
                             env=ext_env(log, TEST_EXT_SUBSCRIBE="platform,function"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "success"
        records = [await sandbox.invoke(b'{"n": %d}' % n, trace_header=TRACE) for n in range(20)]
        assert sandbox.environment.frozen
        shutdown = await sandbox.shutdown()
    assert [r.status for r in records] == ["success"] * 20
    assert [r.cold_start for r in records] == [True] + [False] * 19
    assert all(json.loads(r.response or b"")["requestId"] == r.request_id for r in records)
    events = [e["event"] for e in read_log(log) if e["kind"] == "event"]
    assert [e["requestId"] for e in events[:-1]] == [r.request_id for r in records]
    assert events[-1]["eventType"] == "SHUTDOWN" and events[-1]["shutdownReason"] == "spindown"
    assert all(e["tracing"] == {"type": "X-Amzn-Trace-Id", "value": TRACE} for e in events[:-1])
    [exit_] = shutdown.extensions
    assert exit_.exited_before_deadline and not exit_.killed and exit_.returncode == 0


async def test_init_order_runtime_starts_after_registration(make_settings: SettingsFactory, tmp_path: Path,
                                                             work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER,
                             env=ext_env(log, TEST_EXT_SUBSCRIBE="platform", TEST_EXT_SHUTDOWN_MS="300"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
    entries = read_log(log)
    registered = next(e["t"] for e in entries if e["kind"] == "registered")
    function_init = next(e["t"] for e in entries if e["kind"] == "function_init")
    assert registered < function_init
    types = [e["type"] for e in telemetry_events(entries)]
    assert types[:5] == ["platform.initStart", "platform.telemetrySubscription", "platform.initRuntimeDone",
                         "platform.extension", "platform.initReport"]
    assert types[5:7] == ["platform.start", "platform.runtimeDone"]
    # platform.report is produced after the invoke ends, so it reaches the listener only at the next thaw.
    assert types[-1] == "platform.report"


async def test_invoke_ends_when_the_last_extension_calls_next(make_settings: SettingsFactory, tmp_path: Path,
                                                              work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env=ext_env(log, TEST_EXT_POST_INVOKE_MS="300"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        record = await sandbox.invoke()
    assert record.status == "success"
    assert record.response_latency_ms is not None and record.response_latency_ms < 250
    assert record.post_runtime_extension_ms >= 290
    assert record.duration_ms >= record.post_runtime_extension_ms
    entries = read_log(log)
    released = next(e["t"] for e in entries if e["kind"] == "event")
    handled = next(e["t"] for e in entries if e["kind"] == "function_invoke")
    assert abs(handled - released) < 0.25  # both released by the same INVOKE


async def test_frozen_processes_make_no_progress(make_settings: SettingsFactory, tmp_path: Path,
                                                 work_dir: Path) -> None:
    tick = tmp_path / "tick"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env={"TEST_EXT_TICK_FILE": str(tick)})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
        agent = sandbox.environment.phase.agents[0]
        assert agent.process is not None and agent.process.pid is not None
        state = Path(f"/proc/{agent.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "T"  # stopped
        frozen_at = int(tick.read_text())
        await asyncio.sleep(0.4)
        assert int(tick.read_text()) == frozen_at
        await sandbox.invoke(b'{"sleep_ms": 200}')
        # 200 ms thawed at one tick per 5 ms: well over ten ticks even on a loaded machine.
        assert int(tick.read_text()) > frozen_at + 10


async def test_shutdown_deadline_kills_an_extension_that_does_not_exit(
        make_settings: SettingsFactory, tmp_path: Path, work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env=ext_env(log, TEST_EXT_IGNORE_SHUTDOWN="1"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
        started = time.monotonic()
        shutdown = await sandbox.shutdown()
        took = time.monotonic() - started
    [exit_] = shutdown.extensions
    assert exit_.killed and not exit_.exited_before_deadline and exit_.exit_ms is None
    assert 1.9 <= took < 3.0
    event = [e["event"] for e in read_log(log) if e["kind"] == "event"][-1]
    assert event["eventType"] == "SHUTDOWN"
    assert abs(event["deadlineMs"] - (started + 2.0 - time.monotonic() + time.time()) * 1000) < 250


async def test_shutdown_exit_time_is_recorded(make_settings: SettingsFactory, tmp_path: Path,
                                              work_dir: Path) -> None:
    settings = make_settings(layer_dir=MINIMAL_LAYER, env={"TEST_EXT_SHUTDOWN_MS": "150"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
        shutdown = await sandbox.shutdown()
    [exit_] = shutdown.extensions
    assert exit_.exited_before_deadline and exit_.exit_ms is not None and 150 <= exit_.exit_ms < 1500
    assert shutdown.runtime_exit_ms is not None and shutdown.runtime_exit_ms < 300


async def test_extension_exiting_outside_shutdown_is_a_crash(make_settings: SettingsFactory, tmp_path: Path,
                                                             work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env=ext_env(log, TEST_EXT_EXIT_AFTER="1",
                                                                 TEST_EXT_SUBSCRIBE="platform",
                                                                 TEST_EXT_SHUTDOWN_MS="300"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        crashed = await sandbox.invoke()
        again = await sandbox.invoke()
    assert (crashed.status, crashed.error_type) == ("error", "Extension.Crash")
    # Each new extension process crashes on its first INVOKE again, so the retry crashes too, but only
    # after the environment was reset and initialised again inside that invocation: a suppressed init.
    assert again.cold_start and again.error_type == "Extension.Crash"
    # The environment was reset and initialised again inside the next invocation: a suppressed init.
    starts = [e["record"]["phase"] for e in telemetry_events(read_log(log)) if e["type"] == "platform.initStart"]
    assert "invoke" in starts


async def test_function_timeout_resets_the_environment(make_settings: SettingsFactory, tmp_path: Path,
                                                       work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, timeout_s=1.0,
                             env=ext_env(log, TEST_EXT_SUBSCRIBE="platform", TEST_EXT_SHUTDOWN_MS="300"))
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        timed_out = await sandbox.invoke(b'{"sleep_ms": 5000}')
        after = await sandbox.invoke()
    assert (timed_out.status, timed_out.error_type) == ("timeout", "Sandbox.Timedout")
    assert 1000 <= timed_out.duration_ms < 1500
    assert json.loads(timed_out.response or b"")["errorType"] == "Sandbox.Timedout"
    assert after.status == "success" and after.cold_start
    entries = read_log(log)
    shutdowns = [e["event"] for e in entries if e["kind"] == "event" and e["event"]["eventType"] == "SHUTDOWN"]
    assert shutdowns[0]["shutdownReason"] == "timeout"
    done = [e["record"] for e in telemetry_events(entries) if e["type"] == "platform.runtimeDone"]
    assert done[0]["status"] == "timeout" and done[0]["requestId"] == timed_out.request_id


async def test_function_error_is_reported(make_settings: SettingsFactory, work_dir: Path) -> None:
    settings = make_settings(function_dir=EXAMPLES, handler="app.fail")
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        record = await sandbox.invoke()
        second = await sandbox.invoke()
    assert record.status == "error" and record.error_type
    assert json.loads(record.response or b"")["errorType"] == "ValueError"
    assert not second.cold_start  # a function error does not reset the environment


async def test_runtime_init_error_fails_init(make_settings: SettingsFactory, work_dir: Path) -> None:
    settings = make_settings(env={"TEST_FN_INIT_FAIL": "1"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None
        assert sandbox.init_record.status == "error"
        assert sandbox.init_record.error_type is not None
        record = await sandbox.invoke()
    assert record.status == "error"


async def test_init_times_out_when_an_extension_never_registers(make_settings: SettingsFactory, tmp_path: Path,
                                                                 work_dir: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "extensions").mkdir(parents=True)
    script = layer / "extensions" / "sleeper"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    settings = make_settings(layer_dir=layer, init_timeout_s=1.0)
    started = time.monotonic()
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None
        assert sandbox.init_record.status == "timeout"
    assert time.monotonic() - started < 6


async def test_extensions_see_the_layer_at_opt_and_only_the_stdlib(make_settings: SettingsFactory,
                                                                   tmp_path: Path, work_dir: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "extensions").mkdir(parents=True)
    out = tmp_path / "seen.json"
    script = layer / "extensions" / "looker"
    script.write_text(f"""#!/bin/sh
LAUNCHED_AS="$0" python3 - <<'EOF' > {out}
import json, os, socket, sys, importlib.util
print(json.dumps({{"opt": sorted(os.listdir("/opt")), "argv0": os.environ["LAUNCHED_AS"],
  "sandbox": socket.gethostbyname("sandbox.localdomain"),
  "writable": os.access("/opt", os.W_OK),
  "aiohttp": importlib.util.find_spec("aiohttp") is not None,
  "pythonpath": os.environ.get("PYTHONPATH"),
  "env": sorted(os.environ)}}))
EOF
python3 -E -c 'import importlib.util; print(importlib.util.find_spec("awslambdaric") is not None)' > {out}.E
exec {MINIMAL_LAYER}/extensions/minimal-extension
""")
    script.chmod(0o755)
    settings = make_settings(layer_dir=layer)
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "error"
        isolated = sandbox.isolate
    seen = json.loads(out.read_text())
    assert seen["sandbox"] == "127.0.0.1"
    assert not seen["aiohttp"]
    # PYTHONPATH is not among the variables the docs keep from extensions: the function's reaches them, and
    # only an interpreter that ignores the environment (-E) has nothing but the standard library.
    assert seen["pythonpath"] == settings.function_env("", Path())["PYTHONPATH"]
    assert Path(f"{out}.E").read_text().strip() == "False"
    assert "AWS_LAMBDA_RUNTIME_API" in seen["env"] and "_HANDLER" not in seen["env"]
    assert "LAMBDA_TASK_ROOT" not in seen["env"]
    if isolated:
        assert seen["opt"] == ["extensions"] and seen["argv0"] == "/opt/extensions/looker"
        assert not seen["writable"]


def platform_records(sandbox: LocalLambda, kind: str) -> list[dict[str, Any]]:
    return [event.record for event in sandbox.hub.platform_history
            if event.type == f"platform.{kind}" and isinstance(event.record, dict)]


async def test_a_suppressed_init_runs_under_the_function_timeout(make_settings: SettingsFactory,
                                                                 work_dir: Path) -> None:
    """An init that outlasts the init limit is retried in the first invocation, under the function's timeout rather
    than the init limit, and the invocation's deadline covers it: the handler gets what the init left of it."""
    settings = make_settings(function_dir=SCRIPTED_FUNCTIONS, handler="scripted.handler", init_timeout_s=0.4,
                             timeout_s=3.0, env={"SCRIPTED_INIT_SLEEP_S": "0.8"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "timeout"
        record = await sandbox.invoke()
        reports = [(r["phase"], r["status"]) for r in platform_records(sandbox, "initReport")]
        [suppressed] = [r for r in platform_records(sandbox, "initReport") if r["phase"] == "invoke"]
    assert record.status == "success" and record.cold_start
    assert reports == [("init", "timeout"), ("invoke", "success")]
    assert suppressed["metrics"]["durationMs"] >= 800  # longer than the init limit, and it was not cut
    remaining_ms = json.loads(record.response or b"")["remaining_ms"]
    assert remaining_ms <= 3000 - 800


async def test_a_suppressed_init_that_outlasts_the_function_timeout_times_the_invocation_out(
        make_settings: SettingsFactory, work_dir: Path) -> None:
    settings = make_settings(function_dir=SCRIPTED_FUNCTIONS, handler="scripted.handler", init_timeout_s=0.3,
                             timeout_s=1.0, env={"SCRIPTED_INIT_SLEEP_S": "5"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        started = time.monotonic()
        record = await sandbox.invoke()
        took = time.monotonic() - started
        reports = [(r["phase"], r["status"]) for r in platform_records(sandbox, "initReport")]
        [start] = platform_records(sandbox, "start")
        [done] = platform_records(sandbox, "runtimeDone")
    assert (record.status, record.error_type) == ("timeout", "Sandbox.Timedout")
    assert 0.95 <= took < 2.0
    assert json.loads(record.response or b"")["errorMessage"] == "Task timed out after 1.00 seconds"
    assert reports == [("init", "timeout"), ("invoke", "timeout")]
    # platform.start is sent even though the inline init failed, then the invocation's outcome.
    assert start["requestId"] == done["requestId"] == record.request_id
    assert (done["status"], done["errorType"]) == ("timeout", "Sandbox.Timedout")


@pytest.mark.parametrize(("external", "internal", "reserve_ms"), [
    (False, False, 0), (False, True, 500), (True, False, 300), (True, True, 500)])
async def test_the_runtime_shutdown_reserve_depends_on_the_registered_extensions(
        make_settings: SettingsFactory, work_dir: Path, external: bool, internal: bool, reserve_ms: int) -> None:
    """A runtime that ignores SIGTERM is SIGKILLed when its reserve ends: at once without extensions, 500 ms with an
    internal one (the whole phase), 300 ms of the 2,000 ms with external ones, 500 ms with both."""
    env = {"SCRIPTED_IGNORE_SIGTERM": "1", **({"SCRIPTED_INTERNAL_EXTENSION": "in-runtime"} if internal else {})}
    settings = make_settings(function_dir=SCRIPTED_FUNCTIONS, handler="scripted.handler",
                             layer_dir=MINIMAL_LAYER if external else None, env=env)
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "success"
        assert (await sandbox.invoke()).status == "success"
        started_ms = time.time() * 1000
        shutdown = await sandbox.shutdown()
    assert shutdown.runtime_exit_ms is not None
    assert reserve_ms - 20 <= shutdown.runtime_exit_ms < reserve_ms + 200
    phase_ms = 2000 if external else reserve_ms
    assert abs(shutdown.deadline_ms - (started_ms + phase_ms)) < 100
    assert all(e.exited_before_deadline for e in shutdown.extensions)
