"""The sample functions in the local sandbox with the extension attached, exporting their traces to one endpoint:
what `make phoenix` shows and the end-to-end test checks, with what the sandbox recorded of each phase."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sandbox import platform_events as pe
from sandbox.cli import DEMO_SCRIPT, xray_header
from sandbox.records import InvokeRecord, ShutdownRecord
from sandbox.runner import LocalLambda
from sandbox.settings import FunctionSettings

ROOT: Final = Path(__file__).resolve().parent.parent
FUNCTION_NAME: Final = "demo-function"


def export_env(traces_endpoint: str) -> dict[str, str]:
    """A traces-only backend, configured as a user would: its endpoint for traces, the other signals off."""
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": FUNCTION_NAME,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    invocations: list[InvokeRecord]
    trace_headers: list[str]
    """The X-Amzn-Trace-Id each invocation came with, as a traced caller sends it."""
    platform_events: list[pe.TelemetryEvent]
    """Every platform event the sandbox produced, in order: what the extension's spans are made from."""
    shutdown: ShutdownRecord


def _discard(source: str, line: str) -> None:
    pass


async def run_sample_functions(*, layer: Path, runtime_dir: Path, work_dir: Path, env: Mapping[str, str],
                               on_output: Callable[[str, str], None] = _discard) -> Run:
    """`make demo`'s invocations (cold start, warm ones, an error, a noisy one, a timeout and the re-init after
    it), each with a caller's trace header, then SHUTDOWN: by then the extension has exported everything."""
    settings = FunctionSettings(
        function_dir=ROOT / "examples" / "functions", handler="app.mixed", function_name=FUNCTION_NAME,
        runtime_dir=runtime_dir.resolve(), layer_dir=layer.resolve(), timeout_s=2.0, env=dict(env))
    records: list[InvokeRecord] = []
    headers: list[str] = []
    async with LocalLambda(settings, work_dir=work_dir, on_output=on_output) as sandbox:
        for payload in DEMO_SCRIPT:
            headers.append(xray_header())
            records.append(await sandbox.invoke(json.dumps(payload).encode(), trace_header=headers[-1]))
        shutdown = await sandbox.shutdown()
        events = list(sandbox.hub.platform_history)
    return Run(invocations=records, trace_headers=headers, platform_events=events, shutdown=shutdown)
