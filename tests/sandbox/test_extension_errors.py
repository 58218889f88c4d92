"""What the documented extension failures do: the register limit, a file that cannot be exec'd, and an extension
that reports an init or exit error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scripted import FUNCTIONS, answers, scripted_layer
from support import SettingsFactory, read_log

from sandbox.environment import Stage
from sandbox.runner import LocalLambda


def quiet(source: str, line: str) -> None:
    pass


def platform_records(sandbox: LocalLambda, kind: str) -> list[dict[str, Any]]:
    return [event.record for event in sandbox.hub.platform_history
            if event.type == f"platform.{kind}" and isinstance(event.record, dict)]


async def test_registering_beyond_ten_extensions_is_refused(make_settings: SettingsFactory, tmp_path: Path,
                                                            work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"many": {"log": str(log), "internal": 10}})
    # Registration closes when the runtime's init ends: a slow init keeps it open for all ten, on a busy machine too.
    settings = make_settings(layer_dir=layer, function_dir=FUNCTIONS, handler="scripted.handler",
                             env={"SCRIPTED_INIT_SLEEP_S": "3"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "success"
        assert (await sandbox.invoke()).status == "success"
    seen = answers(read_log(log))
    # The launched file and nine internal extensions make ten: the eleventh is refused.
    assert [seen[f"internal_{n}"][0] for n in range(9)] == [200] * 9
    assert seen["internal_9"] == (403, {"errorType": "Extension.TooManyExtensions",
                                        "errorMessage": "Extension limit (10) reached"})


@pytest.mark.parametrize(("content", "mode", "error_type"), [
    ("#!/bin/sh\nexit 0\n", 0o644, "PermissionDenied"),
    ("#!/no/such/interpreter\n", 0o755, "UnknownError"),
    ("no shebang, not a binary\n", 0o755, "UnknownError"),
], ids=["not-executable", "bad-shebang", "not-a-program"])
async def test_a_file_that_cannot_be_executed_is_a_launch_error(make_settings: SettingsFactory, tmp_path: Path,
                                                                work_dir: Path, content: str, mode: int,
                                                                error_type: str) -> None:
    layer = tmp_path / "layer"
    (layer / "extensions").mkdir(parents=True)
    broken = layer / "extensions" / "broken"
    broken.write_text(content)
    broken.chmod(mode)
    async with LocalLambda(make_settings(layer_dir=layer), work_dir=work_dir, on_output=quiet) as sandbox:
        init = sandbox.init_record
        assert init is not None
        assert (init.status, init.error_type) == ("error", "Extension.LaunchError")
        record = await sandbox.invoke()  # the suppressed init fails the same way
        [report, _] = platform_records(sandbox, "initReport")
        extension = platform_records(sandbox, "extension")[0]
    assert (report["status"], report["errorType"]) == ("error", "Extension.LaunchError")
    assert extension == {"name": "broken", "state": "LaunchError", "events": [], "errorType": error_type}
    assert (record.status, record.error_type) == ("error", "Extension.LaunchError")


async def test_an_init_error_fails_the_init_and_resets_the_environment(make_settings: SettingsFactory,
                                                                       tmp_path: Path, work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"failing": {"log": str(log), "init_error": "Extension.ConfigInvalid"}})
    async with LocalLambda(make_settings(layer_dir=layer), work_dir=work_dir, on_output=quiet) as sandbox:
        init = sandbox.init_record
        assert init is not None and (init.status, init.error_type) == ("error", "Extension.InitError")
        assert sandbox.environment.stage is Stage.IDLE  # reset: the next invocation initialises again
        record = await sandbox.invoke()
        reports = [(r["phase"], r["status"], r.get("errorType")) for r in platform_records(sandbox, "initReport")]
        states = [r["state"] for r in platform_records(sandbox, "extension")]
    seen = answers(read_log(log))
    assert seen["init_error"] == (202, {"status": "OK"})
    # "After Lambda receives the error, no further API calls succeed."
    assert seen["next_after_init_error"][0] == 403
    assert reports == [("init", "error", "Extension.InitError"), ("invoke", "error", "Extension.InitError")]
    assert states == ["InitError", "InitError"]
    assert (record.status, record.error_type, record.cold_start) == ("error", "Extension.InitError", True)


async def test_an_exit_error_fails_the_invocation_and_resets_the_environment(make_settings: SettingsFactory,
                                                                            tmp_path: Path, work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"quitting": {"log": str(log), "exit_error": "Extension.Unrecoverable"}})
    settings = make_settings(layer_dir=layer, function_dir=FUNCTIONS, handler="scripted.handler")
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "success"
        failed = await sandbox.invoke()
        assert sandbox.environment.stage is Stage.IDLE
        again = await sandbox.invoke()
        phases = [r["phase"] for r in platform_records(sandbox, "initStart")]
        [report] = [r for r in platform_records(sandbox, "report") if r["requestId"] == failed.request_id]
    assert answers(read_log(log))["exit_error"] == (202, {"status": "OK"})
    assert (failed.status, failed.error_type) == ("error", "Extension.ExitError")
    # runtimeDone says how the runtime did; the report says how the invocation ended.
    assert (report["status"], report["errorType"]) == ("error", "Extension.ExitError")
    assert again.cold_start and phases == ["init", "invoke"]
