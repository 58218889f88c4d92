"""What a function pays to export its spans: to the extension's in-function receiver (through the layer's exec
wrapper) versus straight to a remote-like collector (a loopback collector that answers 20 or 50 ms late), as
ratios to a floor measured in the same run (straight to a loopback collector that answers at once).
Run: `make bench-receiver`."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, parser, publish
from sandbox.cli import xray_header
from sandbox.otlp_receiver import OTLPReceiver
from sandbox.processes import can_isolate
from sandbox.runner import LocalLambda
from sandbox.settings import FunctionSettings

MARKS = ("<!-- receiver-results:begin -->", "<!-- receiver-results:end -->")
FUNCTION = ROOT / "bench" / "functions"
INVOCATIONS = 60
SETTLED_FROM = 20  # statistics over the invocations after the first ones (connections, the adaptive strategy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    label: str
    through_receiver: bool
    collector_delay_s: float
    spans: int = 1
    buffer_max_spans: int | None = None  # OTEL_LAMBDA_BUFFER_MAX_SPANS; None: the default (2048)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    scenario: Scenario
    export_ms: list[float]
    post_runtime_ms: list[float]
    lost: int  # invocations whose spans never reached the collector


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def function_dir(work_dir: Path) -> Path:
    """The function's code with its own pinned OpenTelemetry beside it (installed once per work dir)."""
    target = work_dir / "bench-receiver-function"
    if not (target / "opentelemetry").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-warn-conflicts", "--only-binary=:all:", "--target", str(target),
                        "-r", str(FUNCTION / "requirements.txt")], check=True)
    shutil.copy2(FUNCTION / "spans.py", target / "spans.py")
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run(scenario: Scenario, layer: Path, runtime_dir: Path, work_dir: Path, code: Path) -> Result:
    async with OTLPReceiver(port=0) as collector:
        collector.response_delay_s = scenario.collector_delay_s
        # The extension always exports to the remote-like collector; the function either to the receiver (the
        # wrapper points it there) or to that same collector.
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_PROPAGATORS": "xray-lambda",
               "OTEL_LAMBDA_RECEIVER_PORT": str(free_port())}
        if scenario.buffer_max_spans is not None:
            env["OTEL_LAMBDA_BUFFER_MAX_SPANS"] = str(scenario.buffer_max_spans)
        if scenario.through_receiver:
            home = Path("/opt") if can_isolate() else layer
            env["AWS_LAMBDA_EXEC_WRAPPER"] = str(home / "otel-extension" / "otel-wrapper")
        settings = FunctionSettings(function_dir=code, handler="spans.handler", runtime_dir=runtime_dir,
                                    layer_dir=layer, timeout_s=10.0, env=env)
        export_ms: list[float] = []
        post_runtime_ms: list[float] = []
        roots: list[str] = []
        payload = json.dumps({"spans": scenario.spans}).encode()
        async with LocalLambda(settings, work_dir=work_dir, on_output=lambda source, line: None) as sandbox:
            for _ in range(INVOCATIONS):
                header = xray_header()
                roots.append(header.split(";")[0].removeprefix("Root=1-").replace("-", ""))
                record = await sandbox.invoke(payload, trace_header=header)
                assert record.status == "success" and record.response is not None, record
                export_ms.append(float(json.loads(record.response)["export_ms"]))
                post_runtime_ms.append(record.post_runtime_extension_ms)
        arrived = {span.trace_id for span in collector.spans() if span.name == "handler"}
    return Result(scenario=scenario, export_ms=export_ms[SETTLED_FROM:], post_runtime_ms=post_runtime_ms[SETTLED_FROM:],
                  lost=sum(root not in arrived for root in roots))


def scenarios() -> list[Scenario]:
    found = [Scenario(label="floor: straight to a loopback collector", through_receiver=False, collector_delay_s=0.0)]
    for delay_ms in (20, 50):
        found.append(Scenario(label=f"to the extension's receiver, collector {delay_ms} ms", through_receiver=True,
                              collector_delay_s=delay_ms / 1000))
        found.append(Scenario(label=f"straight to the collector, {delay_ms} ms", through_receiver=False,
                              collector_delay_s=delay_ms / 1000))
    found.append(Scenario(label="to the extension's receiver, collector 50 ms, 50 spans", through_receiver=True,
                          collector_delay_s=0.05, spans=50))
    found.append(Scenario(label="to the extension's receiver, collector 50 ms, 50 spans, buffer 8192 spans",
                          through_receiver=True, collector_delay_s=0.05, spans=50, buffer_max_spans=8192))
    found.append(Scenario(label="straight to the collector, 50 ms, 50 spans", through_receiver=False,
                          collector_delay_s=0.05, spans=50))
    return found


def table(results: list[Result]) -> str:
    """One row per scenario; a straight export is also compared with the receiver under the same collector."""
    floor = statistics.median(results[0].export_ms)
    receiver = {(r.scenario.collector_delay_s, r.scenario.spans): statistics.median(r.export_ms)
                for r in results if r.scenario.through_receiver and r.scenario.buffer_max_spans is None}
    lines = ["| function exports | export p50 ms | p95 ms | vs floor p50 | vs receiver p50 | post-runtime p50 ms "
             "| p95 ms | lost |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        scenario, export, post = result.scenario, result.export_ms, result.post_runtime_ms
        same = receiver.get((scenario.collector_delay_s, scenario.spans))
        versus = "" if scenario.through_receiver or same is None else f"{statistics.median(export) / same:.1f}x"
        lines.append(f"| {scenario.label} | {statistics.median(export):.2f} | {percentile(export, 0.95):.2f} "
                     f"| {statistics.median(export) / floor:.1f}x | {versus} | {statistics.median(post):.2f} "
                     f"| {percentile(post, 0.95):.2f} | {result.lost} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    work_dir = args.work_dir.resolve()
    code = function_dir(work_dir)
    results = []
    for scenario in scenarios():
        result = await run(scenario, args.layer.resolve(), args.runtime_dir.resolve(), work_dir, code)
        print(json.dumps({"scenario": scenario.label, "export_p50_ms": statistics.median(result.export_ms),
                          "lost": result.lost}), flush=True)
        results.append(result)
    text = table(results)
    publish(text, MARKS, write=args.write)
    return 0


def main() -> int:
    return asyncio.run(main_async(parser(__doc__).parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
