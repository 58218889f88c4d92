"""The exec wrapper as the zip ships it, run the way Lambda's runtime bootstrap runs it (`wrapper <runtime>
<arguments>`), here with `env` as the runtime: what the function's process would see."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import unpack

XRAY_ENTRY_POINTS = """[opentelemetry_propagator]
xray = opentelemetry.propagators.aws:AwsXRayPropagator
xray-lambda = opentelemetry.propagators.aws:AwsXRayLambdaPropagator
"""
OLD_XRAY_ENTRY_POINTS = "[opentelemetry_propagator]\nxray = opentelemetry.propagators.aws:AwsXRayPropagator\n"


@pytest.fixture(scope="module")
def wrapper(host_zip: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    opt = unpack(host_zip.zip_path, tmp_path_factory.mktemp("opt"))
    return opt / "otel-extension" / "otel-wrapper"


def function_dir(tmp_path: Path, entry_points: str | None) -> Path:
    task = tmp_path / "task"
    task.mkdir(parents=True)
    if entry_points is not None:
        info = task / "opentelemetry_propagator_aws_xray-1.0.2.dist-info"
        info.mkdir()
        (info / "entry_points.txt").write_text(entry_points)
    return task


def run(wrapper: Path, env: dict[str, str], *argv: str) -> dict[str, str]:
    shown = subprocess.run([str(wrapper), "env", *argv], env={"PATH": "/usr/bin:/bin", **env},
                           capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def test_the_function_exports_to_the_receiver_with_the_xray_propagator(wrapper: Path, tmp_path: Path) -> None:
    task = function_dir(tmp_path, XRAY_ENTRY_POINTS)
    seen = run(wrapper, {"LAMBDA_TASK_ROOT": str(task), "PYTHONPATH": f"{task}:/var/runtime",
                         # The extension's collector: the function must not go around the receiver to it.
                         "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com/v1/traces",
                         "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret",
                         "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
                         "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_SERVICE_NAME": "shop"})

    assert {key: value for key, value in seen.items() if key.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PROPAGATORS": "xray-lambda",
        "OTEL_SERVICE_NAME": "shop",
    }
    # The import path is the function's own: nothing of the layer is added.
    assert seen["PYTHONPATH"] == f"{task}:/var/runtime" and "otel-extension" not in seen.get("PYTHONPATH", "")


def test_the_runtime_gets_its_arguments_as_they_were(wrapper: Path) -> None:
    shown = subprocess.run([str(wrapper), "printf", "%s|", "a b", "", "*"], env={"PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout
    assert shown == "a b||*|"


@pytest.mark.parametrize(("port", "endpoint"), [("4320", "http://127.0.0.1:4320"), (" 4321 ", "http://127.0.0.1:4321"),
                                                ("", "http://127.0.0.1:4318")])
def test_the_receivers_port_is_followed(wrapper: Path, port: str, endpoint: str) -> None:
    assert run(wrapper, {"OTEL_LAMBDA_RECEIVER_PORT": port})["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint


@pytest.mark.parametrize("port", ["off", "OFF", "0", "4318x"])
def test_without_a_receiver_the_runtime_starts_untouched(wrapper: Path, port: str, tmp_path: Path) -> None:
    task = function_dir(tmp_path, XRAY_ENTRY_POINTS)
    env = {"OTEL_LAMBDA_RECEIVER_PORT": port, "LAMBDA_TASK_ROOT": str(task),
           "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com"}
    assert run(wrapper, env) == {"PATH": "/usr/bin:/bin", "PWD": str(Path.cwd()), **env}


def test_the_propagator_is_only_set_where_the_function_can_load_it(wrapper: Path, tmp_path: Path) -> None:
    old, none = function_dir(tmp_path / "old", OLD_XRAY_ENTRY_POINTS), function_dir(tmp_path / "none", None)
    # An older package has no xray-lambda; without the package there is no X-Ray propagator to name at all.
    assert run(wrapper, {"LAMBDA_TASK_ROOT": str(old)})["OTEL_PROPAGATORS"] == "xray"
    assert "OTEL_PROPAGATORS" not in run(wrapper, {"LAMBDA_TASK_ROOT": str(none)})
    # Found on the runtime's path too; and the function's own choice stays.
    assert run(wrapper, {"PYTHONPATH": f"/nowhere:{old}"})["OTEL_PROPAGATORS"] == "xray"
    assert run(wrapper, {"LAMBDA_TASK_ROOT": str(old), "OTEL_PROPAGATORS": "tracecontext,baggage"})[
        "OTEL_PROPAGATORS"] == "tracecontext,baggage"
