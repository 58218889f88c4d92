"""A function instrumented with its own OpenTelemetry SDK, started through the layer's exec wrapper, exports to
the extension's receiver; the collector gets one trace per invocation with the platform's spans and the
function's, the function's root span under the invocation span, its log record in the same trace."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from support import SettingsFactory

from extension import __version__
from sandbox.cli import xray_header
from sandbox.otlp_receiver import OTLPReceiver, ReceivedSpan
from sandbox.processes import can_isolate
from sandbox.runner import LocalLambda

FUNCTIONS = Path(__file__).parent / "functions"
FUNCTION_OPENTELEMETRY = "1.40.0"  # tests/layer/functions/instrumented-requirements.txt; the layer's is 1.45.2


@pytest.fixture(scope="session")
def instrumented_function(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function's code with its own pinned packages beside it, as a deployment package holds them."""
    function_dir = tmp_path_factory.mktemp("instrumented")
    shutil.copy2(FUNCTIONS / "instrumented.py", function_dir / "instrumented.py")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-conflicts", "--only-binary=:all:", "--target", str(function_dir),
                    "-r", str(FUNCTIONS / "instrumented-requirements.txt")], check=True)
    return function_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def root_id(header: str) -> str:
    root = header.split(";")[0].removeprefix("Root=1-")
    return root.replace("-", "")


async def test_the_functions_spans_and_logs_join_each_invocations_trace(
        instrumented_function: Path, built_layer: Path, make_settings: SettingsFactory, work_dir: Path) -> None:
    port = free_port()
    home = Path("/opt") if can_isolate() else built_layer  # where the function's process sees the layer
    headers = [xray_header() for _ in range(3)]
    async with OTLPReceiver(port=0) as collector:
        settings = make_settings(
            function_dir=instrumented_function, handler="instrumented.handler", function_name="shop",
            layer_dir=built_layer, timeout_s=10.0,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_SERVICE_NAME": "shop",
                 "OTEL_LAMBDA_RECEIVER_PORT": str(port),
                 "AWS_LAMBDA_EXEC_WRAPPER": str(home / "otel-extension" / "otel-wrapper")})
        async with LocalLambda(settings, work_dir=work_dir, on_output=lambda source, line: None) as sandbox:
            records = []
            for header in headers:
                record = await sandbox.invoke(b"{}", trace_header=header)
                records.append(record)
                # Left with the extension's flush at the end of the invocation (adaptive: `end` at this rate).
                assert record.request_id in {s.attributes.get("app.request_id") for s in collector.spans()}
        spans, log_records = collector.spans(), collector.log_records()
        agents = {request.headers.get("User-Agent") for request in collector.requests}

    for record in records:
        assert record.status == "success" and record.response is not None
        assert json.loads(record.response) == {"opentelemetry": FUNCTION_OPENTELEMETRY, "propagators": "xray-lambda",
                                               "endpoint": f"http://127.0.0.1:{port}", "layer_on_path": False}
    # Everything reached the collector through the extension: the function only ever spoke to the receiver.
    assert agents == {f"lambda-otel-extension/{__version__}"}
    traces: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    assert set(traces) == {root_id(header) for header in headers}  # one trace per invocation
    for record, header in zip(records, headers, strict=True):
        trace = {span.name: span for span in traces[root_id(header)]}
        invocation, function_root, work = trace["shop"], trace["handler"], trace["work"]
        assert invocation.attributes["faas.invocation_id"] == record.request_id
        assert {"responseLatency", "responseDuration", "runtimeOverhead", "report"} <= set(trace)
        assert function_root.attributes["app.request_id"] == record.request_id
        # The function's root span hangs under the invocation span, not under the caller's X-Ray Parent.
        assert function_root.parent_span_id == invocation.span_id != header.split("Parent=")[1][:16]
        assert work.parent_span_id == function_root.span_id
        assert function_root.resource["service.name"] == "shop"
        assert function_root.resource["telemetry.sdk.version"] == FUNCTION_OPENTELEMETRY
        # The OTLP record the function's logging handler made (its line on stdout arrives as well, through the
        # Telemetry API, in the same trace under the invocation span).
        lines = {r.scope_name: r for r in log_records if r.body == f"working on {record.request_id}"}
        assert (lines["instrumented"].trace_id, lines["instrumented"].span_id) == (invocation.trace_id, work.span_id)
        assert len(lines) == 2 and all(line.trace_id == invocation.trace_id for line in lines.values())
