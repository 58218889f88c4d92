"""Flush strategies side by side with the floor extension: post-runtime time per invocation at a high and a
low invocation rate, data latency to the receiver, and a slow collector. Run: `make bench-flush`."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import FLOOR, ROOT, parser, publish
from sandbox.otlp_receiver import OTLPReceiver, Signal, spans_of
from sandbox.runner import LocalLambda
from sandbox.settings import FunctionSettings

MARKS = ("<!-- flush-results:begin -->", "<!-- flush-results:end -->")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    conditions: str  # the rate and the collector: a strategy is compared with the floor under the same ones
    layer: Path
    flush: str | None  # None: the floor extension, which has no setting
    invocations: int
    gap_s: float = 0.0
    collector_delay_s: float = 0.0
    settled_from: int = 0  # statistics over invocations from this index on

    @property
    def label(self) -> str:
        return f"{self.flush or 'floor'}, {self.conditions}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    scenario: Scenario
    post_runtime_ms: list[float]
    latency_ms: list[float]  # from the invocation's end to its span's arrival; negative: before the freeze
    lost: int


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(scenario: Scenario, runtime_dir: Path, work_dir: Path) -> Result:
    async with OTLPReceiver(port=0) as receiver:
        receiver.response_delay_s = scenario.collector_delay_s
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        if scenario.flush:
            env["OTEL_LAMBDA_FLUSH"] = scenario.flush
        settings = FunctionSettings(function_dir=ROOT / "examples" / "functions", handler="app.succeed",
                                    runtime_dir=runtime_dir, layer_dir=scenario.layer, timeout_s=10.0, env=env)
        ended: dict[str, float] = {}
        post_runtime: list[float] = []
        async with LocalLambda(settings, work_dir=work_dir, on_output=lambda source, line: None) as sandbox:
            for number in range(scenario.invocations):
                if number and scenario.gap_s:
                    await asyncio.sleep(scenario.gap_s)  # idle: the environment stays frozen
                record = await sandbox.invoke(b"{}")
                ended[record.request_id] = time.time()
                post_runtime.append(record.post_runtime_extension_ms)
        arrivals: dict[str, float] = {}
        for request in receiver.requests:
            if request.signal is not Signal.TRACES:
                continue
            for span in spans_of(request.message):
                request_id = span.attributes.get("faas.invocation_id")
                if isinstance(request_id, str) and span.span.kind == span.span.SPAN_KIND_SERVER:
                    arrivals.setdefault(request_id, request.received_unix_nano / 1e9)
    settled = scenario.settled_from
    latency = [(arrivals[rid] - end) * 1000 for rid, end in list(ended.items())[settled:] if rid in arrivals]
    lost = 0 if scenario.flush is None else sum(rid not in arrivals for rid in ended)
    return Result(scenario=scenario, post_runtime_ms=post_runtime[settled:], latency_ms=latency, lost=lost)


def scenarios(layer: Path) -> list[Scenario]:
    found: list[Scenario] = []
    for rate, count, gap, settled in (("high", 60, 0.0, 30), ("low", 8, 2.0, 0)):
        found.append(Scenario(conditions=f"{rate} rate", layer=FLOOR, flush=None, invocations=count, gap_s=gap,
                              settled_from=settled))
        for flush in ("end", "periodic,1000", "continuous,1000", "adaptive"):
            found.append(Scenario(conditions=f"{rate} rate", layer=layer, flush=flush, invocations=count,
                                  gap_s=gap, settled_from=settled))
    for slow_flush in (None, "end", "adaptive"):
        found.append(Scenario(conditions="high rate, collector 500 ms", layer=layer if slow_flush else FLOOR,
                              flush=slow_flush, invocations=40, collector_delay_s=0.5, settled_from=20))
    return found


def table(results: list[Result]) -> str:
    lines = ["| scenario | post-runtime p50 ms | p95 ms | max ms | vs floor p50 | data latency p50 ms | max ms "
             "| lost |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    floors = {r.scenario.conditions: r for r in results if r.scenario.flush is None}
    for result in results:
        values = result.post_runtime_ms
        floor = floors.get(result.scenario.conditions)
        delta = statistics.median(values) - statistics.median(floor.post_runtime_ms) if floor else 0.0
        latency = result.latency_ms
        lines.append(
            f"| {result.scenario.label} | {statistics.median(values):.2f} | {percentile(values, 0.95):.2f} "
            f"| {max(values):.2f} | {'' if result.scenario.flush is None else f'{delta:+.2f}'} "
            f"| {f'{statistics.median(latency):.0f}' if latency else '-'} "
            f"| {f'{max(latency):.0f}' if latency else '-'} | {result.lost if result.scenario.flush else '-'} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    results = []
    for scenario in scenarios(args.layer.resolve()):
        result = await run(scenario, args.runtime_dir.resolve(), args.work_dir.resolve())
        print(json.dumps({"scenario": scenario.label, "p50_ms": statistics.median(result.post_runtime_ms),
                          "lost": result.lost}), flush=True)
        results.append(result)
    text = table(results)
    publish(text, MARKS, write=args.write)
    return 0


def main() -> int:
    return asyncio.run(main_async(parser(__doc__).parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
