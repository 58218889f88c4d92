"""The built zip as Lambda uses it: unpacked into a directory laid out like /opt, in the local sandbox, beside a
function that ships its own, conflicting protobuf; and, on a runtime it cannot run on, out of the way."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import unpack
from support import TEST_FUNCTIONS, SettingsFactory

from sandbox.otlp_receiver import OTLPReceiver
from sandbox.runner import LocalLambda

FUNCTIONS = Path(__file__).parent / "functions"
FUNCTION_PROTOBUF = "3.20.3"  # the layer ships protobuf 7: two copies that must never meet


class Output:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, source: str, line: str) -> None:
        self.lines.append((source, line))

    def of_extension(self) -> list[dict[str, Any]]:
        found = []
        for source, line in self.lines:
            if source.startswith("extension-") and line.startswith("{"):
                found.append(json.loads(line))
        return found


@pytest.fixture(scope="session")
def conflicting_function(tmp_path_factory: pytest.TempPathFactory) -> Path:
    function_dir = tmp_path_factory.mktemp("function")
    shutil.copy2(FUNCTIONS / "conflicting.py", function_dir / "conflicting.py")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", "--target", str(function_dir), f"protobuf=={FUNCTION_PROTOBUF}"],
                   check=True)
    return function_dir


async def test_the_unpacked_zip_works_beside_a_function_with_its_own_protobuf(
        host_zip: Any, conflicting_function: Path, make_settings: SettingsFactory, work_dir: Path,
        tmp_path: Path) -> None:
    opt = unpack(host_zip.zip_path, tmp_path / "opt")
    output = Output()
    async with OTLPReceiver(port=0) as receiver:
        settings = make_settings(function_dir=conflicting_function, handler="conflicting.handler",
                                 function_name="conflict", layer_dir=opt,
                                 env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        async with LocalLambda(settings, work_dir=work_dir, on_output=output) as sandbox:
            records = [await sandbox.invoke(b"{}") for _ in range(3)]
            shutdown = await sandbox.shutdown()
        spans = receiver.spans()
    assert [r.status for r in records] == ["success"] * 3
    for record in records:
        assert record.response is not None
        # The function imports its own protobuf and cannot see the layer's packages at all.
        assert json.loads(record.response) == {"protobuf": FUNCTION_PROTOBUF, "roundtrip": True,
                                               "layer_visible": False}
    # The extension runs on its own protobuf 7: the spans it encoded arrived.
    invocations = {str(s.attributes["faas.invocation_id"]) for s in spans if s.span.kind == s.span.SPAN_KIND_SERVER}
    assert invocations == {r.request_id for r in records}
    assert shutdown.extensions[0].exited_before_deadline and shutdown.extensions[0].returncode == 0
    # The version stamped in the layer is the one the extension says it runs, at start.
    stamped = json.loads((opt / "otel-extension" / "layer.json").read_text())["version"]
    assert stamped in {line.get("version") for line in output.of_extension()}


def assert_out_of_the_way(records: list[Any], shutdown: Any, output: Output, reason: str) -> None:
    assert [r.status for r in records] == ["success"] * len(records)
    # Registered for SHUTDOWN only: no invocation waits for the extension.
    assert all(r.post_runtime_extension_ms < 50 for r in records)
    [exit_] = shutdown.extensions
    assert exit_.exited_before_deadline and exit_.returncode == 0
    lines = output.of_extension()
    [said] = [line for line in lines if line["event"] == "layer_unusable"]  # said once
    assert said["mode"] == "pass_through" and reason in said["reason"] and said["fix"]
    assert [line["event"] for line in lines] == ["layer_unusable"]


async def test_a_layer_for_another_python_says_so_once_and_stays_out_of_the_way(
        host_zip: Any, make_settings: SettingsFactory, work_dir: Path, tmp_path: Path) -> None:
    opt = unpack(host_zip.zip_path, tmp_path / "opt")
    # This machine's zip, relabelled as the layer of a Python this machine does not run.
    home = opt / "otel-extension"
    (home / host_zip.variant.runtime).rename(home / "python3.99")
    stamp = json.loads((home / "layer.json").read_text())
    (home / "layer.json").write_text(json.dumps({**stamp, "runtime": "python3.99"}))
    output = Output()
    settings = make_settings(function_dir=TEST_FUNCTIONS, handler="probe.handler", layer_dir=opt)
    async with LocalLambda(settings, work_dir=work_dir, on_output=output) as sandbox:
        records = [await sandbox.invoke(b"{}") for _ in range(2)]
        shutdown = await sandbox.shutdown()
    assert_out_of_the_way(records, shutdown, output, "built for python3.99")


async def test_without_any_python_the_launcher_still_registers_and_waits(
        host_zip: Any, make_settings: SettingsFactory, work_dir: Path, tmp_path: Path) -> None:
    opt = unpack(host_zip.zip_path, tmp_path / "opt")
    # A PATH with no python3 on it (the tools the sandbox itself launches with stay reachable).
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("unshare", "mount"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    output = Output()
    settings = make_settings(function_dir=TEST_FUNCTIONS, handler="probe.handler", layer_dir=opt,
                             env={"PATH": str(tools)})
    async with LocalLambda(settings, work_dir=work_dir, on_output=output) as sandbox:
        records = [await sandbox.invoke(b"{}") for _ in range(2)]
        shutdown = await sandbox.shutdown()
    assert_out_of_the_way(records, shutdown, output, "no python3")
