"""Fault injection: the extension in the sandbox against a collector that goes down, fails, throttles or hangs,
and a buffer overloaded many times over: spans lost, drops counted, what the function pays, shutdown in time.
Run: `make bench-faults` (`--trials 10` for a quick run)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import FLOOR, ROOT, memory_of, parser, publish
from sandbox.otlp_receiver import FaultMode, OTLPReceiver, ReceivedSpan
from sandbox.records import InvokeRecord, ShutdownRecord
from sandbox.runner import LocalLambda
from sandbox.settings import FunctionSettings

MARKS = ("<!-- faults-results:begin -->", "<!-- faults-results:end -->")
FUNCTION = "faults-function"
# What the extension makes of one invocation of app.succeed: the invocation span (named after the function),
# the three runtimeDone spans, and the report with extensionOverhead under it. Plus one init per environment.
PHASES = ("responseLatency", "responseDuration", "runtimeOverhead", "report", "extensionOverhead")
SPAN_NAMES = (FUNCTION, *PHASES)
TIMEOUT_S = 3.0  # Lambda's default function timeout
SHUTDOWN_BUDGET_MS = 2_000  # Lambda's with external extensions, which the sandbox applies
OVERLOAD_BUFFER = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """`invocations` back to back while the collector answers with `mode`."""

    mode: FaultMode
    invocations: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    label: str
    phases: tuple[Phase, ...]
    layer: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = TIMEOUT_S
    shutdown_mode: FaultMode = FaultMode.OK  # how the collector answers from the last invocation on


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One environment's life, start to SHUTDOWN, and what reached the receiver."""

    script: Script
    records: list[list[InvokeRecord]]  # per phase
    trace_ids: dict[str, str]  # request id -> the trace id its X-Ray header gave it
    shutdown: ShutdownRecord
    spans: list[ReceivedSpan]
    fault_answers: int  # requests the receiver answered with a fault (a refused connection is never seen)
    log: list[dict[str, Any]]  # the extension's JSON lines from stdout
    peak_rss_kb: int | None  # the extension's VmHWM after the last invocation


@dataclass(frozen=True, slots=True, kw_only=True)
class Accounting:
    """Spans counted one by one: those the platform events call for against the distinct ones received."""

    sent: int
    received: int
    incomplete: int  # invocations with at least one span missing
    duplicates: int
    unexpected: int  # received spans that are no expected (invocation, name) of this run, or a second copy
    dropped: int  # what the extension's `spans_dropped` lines add up to

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def unaccounted(self) -> int:
        """Lost without being reported as dropped."""
        return self.lost - self.dropped


async def run(script: Script, runtime_dir: Path, work_dir: Path) -> Run:
    lines: list[str] = []

    def keep(source: str, line: str) -> None:
        if source.startswith("extension-"):
            lines.append(line)

    async with OTLPReceiver(port=0) as receiver:
        settings = FunctionSettings(function_dir=ROOT / "examples" / "functions", handler="app.succeed",
                                    function_name=FUNCTION, runtime_dir=runtime_dir, layer_dir=script.layer,
                                    timeout_s=script.timeout_s,
                                    env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **script.env})
        records: list[list[InvokeRecord]] = []
        trace_ids: dict[str, str] = {}
        async with LocalLambda(settings, work_dir=work_dir, on_output=keep) as sandbox:
            for phase in script.phases:
                await receiver.switch(phase.mode)
                records.append([])
                for _ in range(phase.invocations):
                    # Each invocation its own trace: every span it makes can be told apart by its trace id.
                    trace_id = uuid.uuid4().hex
                    header = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
                    record = await sandbox.invoke(b"{}", trace_header=header)
                    records[-1].append(record)
                    trace_ids[record.request_id] = trace_id
            await receiver.switch(script.shutdown_mode)
            pids = [a.process.pid for a in sandbox.environment.phase.agents if a.process and a.process.pid]
            peak = memory_of(pids[0])[1] if pids else None  # frozen now: its high-water mark holds still
            shutdown = await sandbox.shutdown()
        spans = receiver.spans()
        answers = receiver.refused_count
    log = [entry for entry in map(_json_object, lines) if entry is not None]
    return Run(script=script, records=records, trace_ids=trace_ids, shutdown=shutdown, spans=spans,
               fault_answers=answers, log=log, peak_rss_kb=peak)


def account(result: Run) -> Accounting:
    """Each invocation calls for SPAN_NAMES in its trace, the first one also for init (one environment)."""
    request_ids = [r.request_id for phase in result.records for r in phase]
    expected = {(rid, name) for rid in request_ids for name in SPAN_NAMES} | {(request_ids[0], "init")}
    requests = {trace_id: rid for rid, trace_id in result.trace_ids.items()}
    received: set[tuple[str, str]] = set()
    for span in {s.span_id: s for s in result.spans}.values():  # each distinct span once
        received.add((requests.get(span.trace_id, "?"), span.name))
    distinct = len({s.span_id for s in result.spans})
    dropped = sum(int(e.get("dropped", 0)) for e in result.log if e.get("event") == "spans_dropped")
    missing = expected - received
    return Accounting(sent=len(expected), received=len(expected & received),
                      incomplete=len({rid for rid, _ in missing}), duplicates=len(result.spans) - distinct,
                      unexpected=distinct - len(expected & received), dropped=dropped)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- the scenarios ------------------------------------------------------------------------------------------


def loss_scripts(layer: Path) -> list[Script]:
    """(a) down for 30 invocations, (d) 503 and 429 periods; then the collector is back for 5 more. One
    invocation first, so that the fault meets a warm extension (the first one pays the imports)."""
    found = []
    for mode, count, name in ((FaultMode.DOWN, 30, "down"), (FaultMode.FAIL_503, 10, "503"),
                              (FaultMode.THROTTLE_429, 10, "429, Retry-After 1 s")):
        for flush in ("end", "adaptive"):
            phases = (Phase(mode=FaultMode.OK, invocations=1), Phase(mode=mode, invocations=count),
                      Phase(mode=FaultMode.OK, invocations=5))
            found.append(Script(label=f"{name} for {count} invocations, then up for 5 | {flush}", layer=layer,
                                phases=phases, env={"OTEL_LAMBDA_FLUSH": flush}))
    return found


def overload_scripts(layer: Path) -> list[Script]:
    """(c) the collector down while 10x and 50x the buffer's spans are produced; back up for SHUTDOWN."""
    per_invocation = len(SPAN_NAMES)
    found = []
    for times, buffer in ((10, OVERLOAD_BUFFER), (50, OVERLOAD_BUFFER), (50, 1_000_000)):
        invocations = -(-times * OVERLOAD_BUFFER // per_invocation)
        bound = f"buffer {buffer}" if buffer == OVERLOAD_BUFFER else "no bound (reference)"
        found.append(Script(label=f"{bound}, {times}x {OVERLOAD_BUFFER} spans while down", layer=layer,
                            phases=(Phase(mode=FaultMode.DOWN, invocations=invocations),),
                            env={"OTEL_LAMBDA_BUFFER_MAX_SPANS": str(buffer)}))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit:
    """How one trial's extension left at SHUTDOWN."""

    exit_ms: float | None  # from the start of shutdown; None when it was killed at the deadline
    in_time: bool
    returncode: int | None
    after_last_line_ms: float | None  # from its last log line (`shutdown`) to its exit: the process teardown


@dataclass(slots=True)
class Hang:
    """(b) post-runtime per invocation with the collector hanging, and shutdown exits over many trials."""

    post_runtime_ms: dict[str, list[float]] = field(default_factory=dict)
    exits: dict[str, list[Exit]] = field(default_factory=dict)


async def hang(layer: Path, args: argparse.Namespace, runtime_dir: Path, work_dir: Path) -> Hang:
    found = Hang()
    for name, where in (("floor", FLOOR), ("extension", layer)):
        hanging = Phase(mode=FaultMode.HANG, invocations=args.hang_invocations)
        script = Script(label=name, layer=where, phases=(hanging,), shutdown_mode=FaultMode.HANG)
        result = await run(script, runtime_dir, work_dir)
        found.post_runtime_ms[name] = [r.post_runtime_extension_ms for r in result.records[0]]
        print(json.dumps({"scenario": f"hang, {name}", "post_runtime_p50_ms": statistics.median(
            found.post_runtime_ms[name])}), flush=True)
    # A trial: a cold start, one invocation with the collector answering, then it hangs: the last report (and
    # whatever the buffer holds) must go out at SHUTDOWN, against a collector that never answers.
    for name, where, trials in (("floor", FLOOR, min(10, args.trials)), ("extension", layer, args.trials)):
        exits = found.exits[name] = []
        for _ in range(trials):
            script = Script(label=name, layer=where, phases=(Phase(mode=FaultMode.OK, invocations=1),),
                            shutdown_mode=FaultMode.HANG)
            exits.append(exit_of(await run(script, runtime_dir, work_dir)))
        print(json.dumps({"scenario": f"hang at shutdown, {name}", "trials": trials,
                          "in_time": sum(e.in_time for e in exits)}), flush=True)
    return found


def exit_of(result: Run) -> Exit:
    [extension] = result.shutdown.extensions
    after = None
    stamps = [e["timestamp"] for e in result.log if isinstance(e.get("timestamp"), str)]
    if stamps and extension.exit_ms is not None:
        last_ms = dt.datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")).timestamp() * 1000
        started_ms = result.shutdown.deadline_ms - SHUTDOWN_BUDGET_MS  # the shutdown's start, wall clock
        after = extension.exit_ms - (last_ms - started_ms)
    return Exit(exit_ms=extension.exit_ms, in_time=extension.exited_before_deadline,
                returncode=extension.returncode, after_last_line_ms=after)


# --- the tables ---------------------------------------------------------------------------------------------


def loss_table(runs: list[Run]) -> str:
    lines = ["| collector | flush | spans sent | received | lost | invocations incomplete | duplicates "
             "| drops reported | fault answers | post-runtime in the fault p50 ms | max ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in runs:
        counts = account(result)
        during = [r.post_runtime_extension_ms for r in result.records[1]]
        scenario, flush = result.script.label.split(" | ")
        answers = "-" if result.script.phases[1].mode is FaultMode.DOWN else str(result.fault_answers)
        lines.append(f"| {scenario} | {flush} | {counts.sent} | {counts.received} | {counts.lost} "
                     f"| {counts.incomplete} | {counts.duplicates} | {counts.dropped} | {answers} "
                     f"| {statistics.median(during):.2f} | {max(during):.2f} |")
    return "\n".join(lines) + _unexpected(runs)


def hang_table(found: Hang, args: argparse.Namespace) -> str:
    lines = ["| extension | post-runtime p50 ms | p95 ms | max ms | vs floor p50 | shutdown exits before the "
             "deadline | killed at the deadline | exit p50 ms | max ms | last log line to exit p50 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    floor = statistics.median(found.post_runtime_ms["floor"])
    for name in ("floor", "extension"):
        values, exits = found.post_runtime_ms[name], found.exits[name]
        exited = [e.exit_ms for e in exits if e.exit_ms is not None]
        teardown = [e.after_last_line_ms for e in exits if e.after_last_line_ms is not None]
        delta = "" if name == "floor" else f"{statistics.median(values) - floor:+.2f}"
        lines.append(f"| {name} | {statistics.median(values):.2f} | {percentile(values, 0.95):.2f} | {max(values):.2f} "
                     f"| {delta} | {sum(e.in_time for e in exits)} of {len(exits)} "
                     f"| {sum(e.exit_ms is None for e in exits)} | {_ms(exited, statistics.median)} "
                     f"| {_ms(exited, max)} | {_ms(teardown, statistics.median)} | {_ms(teardown, max)} |")
    return "\n".join(lines) + (f"\n\nPost-runtime over {args.hang_invocations} back-to-back invocations of one "
                               f"environment ({TIMEOUT_S:.0f} s function timeout); shutdown over one cold start, "
                               f"one invocation and SHUTDOWN per trial (deadline {SHUTDOWN_BUDGET_MS:,} ms); exit "
                               "times of the extensions that exited, from the start of shutdown.")


def _ms(values: list[float], summary: Callable[[list[float]], float]) -> str:
    return f"{summary(values):.0f}" if values else "-"


def overload_table(runs: list[Run]) -> str:
    lines = ["| scenario | spans produced | received | lost | drops reported | lost, not reported | duplicates "
             "| extension peak RSS (VmHWM) MiB | vs 10x |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = runs[0].peak_rss_kb
    for result in runs:
        counts = account(result)
        peak = result.peak_rss_kb
        versus = f"{(peak - base) / 1024:+.1f}" if peak is not None and base is not None else "-"
        lines.append(f"| {result.script.label} | {counts.sent} | {counts.received} | {counts.lost} | {counts.dropped} "
                     f"| {counts.unaccounted} | {counts.duplicates} | {peak / 1024 if peak else float('nan'):.1f} "
                     f"| {versus} |")
    return "\n".join(lines) + _unexpected(runs)


async def main_async(args: argparse.Namespace) -> int:
    began = time.monotonic()
    layer, runtime_dir, work_dir = args.layer.resolve(), args.runtime_dir.resolve(), args.work_dir.resolve()
    losses, overloads = [], []
    for script in loss_scripts(layer):
        losses.append(result := await run(script, runtime_dir, work_dir))
        _progress(result)
    for script in overload_scripts(layer):
        overloads.append(result := await run(script, runtime_dir, work_dir))
        _progress(result)
    hung = await hang(layer, args, runtime_dir, work_dir)
    minutes = (time.monotonic() - began) / 60
    text = "\n\n".join([loss_table(losses), hang_table(hung, args), overload_table(overloads)])
    text += f"\n\nWhole run: {minutes:.1f} minutes."
    publish(text, MARKS, write=args.write)
    return 0


def _unexpected(runs: list[Run]) -> str:
    """A note when spans arrived that the accounting cannot place: the expected span set has changed."""
    strays = {r.script.label: account(r).unexpected for r in runs if account(r).unexpected}
    return f"\n\nSpans that match no expected (invocation, name), per scenario: {strays}" if strays else ""


def _progress(result: Run) -> None:
    counts = account(result)
    print(json.dumps({"scenario": result.script.label, "sent": counts.sent, "received": counts.received,
                      "dropped": counts.dropped, "duplicates": counts.duplicates, "unexpected": counts.unexpected}),
          flush=True)


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def main() -> int:
    arguments = parser(__doc__)
    arguments.add_argument("--trials", type=int, default=100, help="shutdown trials with a hanging collector")
    arguments.add_argument("--hang-invocations", type=int, default=20,
                           help="invocations against a hanging collector, for the post-runtime statistics")
    return asyncio.run(main_async(arguments.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
