"""Cold start and footprint, side by side with the floor extension and with no extension at all:
ready time, INIT duration, the first invocation, resident memory, ingest throughput, layer size.
Run: `make bench-startup`."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import FLOOR, ROOT, memory_of, parser, publish
from sandbox.otlp_receiver import OTLPReceiver
from sandbox.runner import LocalLambda
from sandbox.settings import FunctionSettings

MARKS = ("<!-- startup-results:begin -->", "<!-- startup-results:end -->")


@dataclass(slots=True)
class Samples:
    ready_ms: list[float] = field(default_factory=list)
    init_ms: list[float] = field(default_factory=list)
    first_response_ms: list[float] = field(default_factory=list)
    first_post_runtime_ms: list[float] = field(default_factory=list)
    imports_ms: list[float] = field(default_factory=list)
    # The first invocation's post-runtime time, taken apart: the imports and set-up still running once the
    # runtime was done, the first flush, and the rest (waiting for platform.runtimeDone to be delivered).
    start_left_ms: list[float] = field(default_factory=list)
    first_flush_ms: list[float] = field(default_factory=list)
    runtime_done_wait_ms: list[float] = field(default_factory=list)
    memory_kb: dict[str, tuple[int, int]] = field(default_factory=dict)  # stage -> (VmRSS, VmHWM)


async def cold_start(layer: Path | None, runtime_dir: Path, work_dir: Path, samples: Samples,
                     *, footprint: bool) -> None:
    """One environment: init, the first invocation, and (with `footprint`) 100 more and a 10,000-line one."""
    lines: list[tuple[float, str]] = []  # each line of output with the time it arrived (the sandbox's clock)
    async with OTLPReceiver(port=0) as receiver:
        settings = FunctionSettings(function_dir=ROOT / "examples" / "functions", handler="app.mixed",
                                    runtime_dir=runtime_dir, layer_dir=layer, timeout_s=30.0,
                                    env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        def on_output(stream: str, line: str) -> None:
            lines.append((time.monotonic(), line))

        async with LocalLambda(settings, work_dir=work_dir, on_output=on_output) as box:
            assert box.init_record is not None
            samples.init_ms.append(box.init_record.duration_ms)
            if box.init_record.extensions:
                samples.ready_ms.append(box.init_record.extensions[0].ready_ms or 0.0)
            first = await box.invoke(b'{"action": "succeed"}')
            runtime_done = time.monotonic() - (first.duration_ms - (first.runtime_done_ms or 0.0)) / 1000
            samples.first_response_ms.append(first.response_latency_ms or 0.0)
            samples.first_post_runtime_ms.append(first.post_runtime_extension_ms)
            agent = box.environment.phase.agents[0] if box.environment.phase.agents else None
            if footprint and agent is not None and agent.process is not None and agent.process.pid:
                pid = agent.process.pid
                samples.memory_kb["after init and 1 invocation"] = memory_of(pid)
                for _ in range(100):
                    await box.invoke(b'{"action": "succeed"}')
                samples.memory_kb["after 100 invocations"] = memory_of(pid)
                await box.invoke(b'{"action": "chatty", "lines": 10000}')
                samples.memory_kb["after a 10,000-line invocation"] = memory_of(pid)
    started = next(((at, json.loads(line)) for at, line in lines if '"event":"started"' in line), None)
    flushed = next((json.loads(line) for _, line in lines if '"event":"flushed"' in line), None)
    if started is not None and flushed is not None:
        samples.imports_ms.append(started[1]["imports_ms"])
        left = max(0.0, (started[0] - runtime_done) * 1000)
        samples.start_left_ms.append(left)
        samples.first_flush_ms.append(flushed["duration_ms"])
        samples.runtime_done_wait_ms.append(max(0.0, first.post_runtime_extension_ms - left - flushed["duration_ms"]))


def batch_of(invocations: int, start_index: int) -> bytes:
    """A Telemetry API batch with start, runtimeDone and report for each of `invocations` invocations."""
    events = []
    for number in range(start_index, start_index + invocations):
        request_id = f"00000000-0000-0000-0000-{number:012d}"
        events += [
            {"time": "2024-05-20T16:29:45.008Z", "type": "platform.start", "record": {"requestId": request_id}},
            {"time": "2024-05-20T16:29:45.019Z", "type": "platform.runtimeDone", "record": {
                "requestId": request_id, "status": "success", "metrics": {"durationMs": 11.185, "producedBytes": 40},
                "spans": [{"name": "responseLatency", "start": "2024-05-20T16:29:45.008Z", "durationMs": 2.215},
                          {"name": "responseDuration", "start": "2024-05-20T16:29:45.010Z", "durationMs": 0.056},
                          {"name": "runtimeOverhead", "start": "2024-05-20T16:29:45.010Z", "durationMs": 8.686}]}},
            {"time": "2024-05-20T16:29:45.022Z", "type": "platform.report", "record": {
                "requestId": request_id, "status": "success", "metrics": {
                    "durationMs": 11.642, "billedDurationMs": 12, "memorySizeMB": 128, "maxMemoryUsedMB": 67}}},
        ]
    return json.dumps(events).encode()


async def ingest(batches: int, per_batch: int, *, floor: bool) -> float:
    """Events per second from POST to encoded OTLP bytes (the floor: a listener that only reads the body).

    Each batch is posted on one kept-alive connection, as the Telemetry API does, by a client that costs next to
    nothing (the requests are made beforehand: in Lambda the client is not in our process); after each batch the
    buffer is drained and encoded, as a flush does, so the buffer stays as small as in production."""
    from extension.app import RandomIds
    from extension.bootstrap import bind_listener
    from extension.buffer import Buffer
    from extension.config import SignalExport
    from extension.convert.resource import lambda_resource
    from extension.convert.spans import SpanAssembler
    from extension.export.otlp import TRACES, OTLPExporter, encode_request
    from extension.export.transport import HTTPTransport
    from extension.http.client import HTTPClient
    from extension.listener import listening
    from extension.pipeline import Pipeline

    requests = [b"POST /t HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                for body in (batch_of(per_batch, n * per_batch) for n in range(batches))]
    sock = bind_listener("127.0.0.1", 0)
    # Traces on, as in production (a pipeline without a span exporter keeps no spans); this run encodes the
    # buffer itself, so the exporter never sends anything.
    unused = OTLPExporter(HTTPTransport(HTTPClient()), SignalExport(endpoint="http://127.0.0.1:9/v1/traces"), TRACES)
    assembler = SpanAssembler(resource=lambda_resource(service_name="bench"), function_name="bench", ids=RandomIds())
    pipeline = Pipeline(assembler, Buffer(1_000_000), unused)
    accept = (lambda raw: None) if floor else pipeline.accept
    async with listening(accept, "/t", sock) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began = time.perf_counter()
        for request in requests:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")  # the answer: 200 with an empty body
            if not floor:
                encode_request(pipeline._spans.buffer.drain(), "http/protobuf", "gzip", TRACES)
        elapsed = time.perf_counter() - began
        writer.close()
    return batches * per_batch * 3 / elapsed


def layer_sizes(layer: Path) -> tuple[int, int]:
    unzipped = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(layer.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(layer))
    return unzipped, len(buffer.getvalue())


def stat(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else ""
    return f"{statistics.median(values):.1f}{spread}"


def ratio(ours: list[float], floor: list[float]) -> str:
    return f"{statistics.median(ours) / statistics.median(floor):.2f}x" if ours and floor else "-"


async def main_async(args: argparse.Namespace) -> int:
    runs = {"none": Samples(), "floor": Samples(), "ours": Samples()}
    layers = {"none": None, "floor": FLOOR, "ours": args.layer.resolve()}
    for repeat in range(args.repeats):  # interleaved, so that machine noise hits all three alike
        for name, layer in layers.items():
            await cold_start(layer, args.runtime_dir.resolve(), args.work_dir.resolve(), runs[name],
                             footprint=repeat == 0 and name != "none")
    floor_rate = statistics.median([await ingest(200, 50, floor=True) for _ in range(3)])
    ours_rate = statistics.median([await ingest(200, 50, floor=False) for _ in range(3)])
    unzipped, zipped = layer_sizes(args.layer.resolve())
    none, floor, ours = runs["none"], runs["floor"], runs["ours"]
    rows = [
        "| measure | no extension | floor | ours | ours / floor |", "|---|---:|---:|---:|---:|",
        f"| ready: process start to first `next` (ms) | - | {stat(floor.ready_ms)} | {stat(ours.ready_ms)} "
        f"| {ratio(ours.ready_ms, floor.ready_ms)} |",
        f"| INIT duration (ms) | {stat(none.init_ms)} | {stat(floor.init_ms)} | {stat(ours.init_ms)} "
        f"| {ratio(ours.init_ms, floor.init_ms)} |",
        f"| first invocation: response latency (ms) | {stat(none.first_response_ms)} "
        f"| {stat(floor.first_response_ms)} | {stat(ours.first_response_ms)} | "
        f"{statistics.median(ours.first_response_ms) - statistics.median(floor.first_response_ms):+.1f} ms |",
        f"| first invocation: post-runtime (ms) | - | {stat(floor.first_post_runtime_ms)} "
        f"| {stat(ours.first_post_runtime_ms)} | |",
        f"| imports after the first `next` (ms) | - | - | {stat(ours.imports_ms)} | |",
        f"| post-runtime, 1: imports and set-up left when the runtime was done (ms) | - | - "
        f"| {stat(ours.start_left_ms)} | |",
        f"| post-runtime, 2: waiting for `platform.runtimeDone` (ms) | - | - | {stat(ours.runtime_done_wait_ms)} | |",
        f"| post-runtime, 3: the first flush (ms) | - | - | {stat(ours.first_flush_ms)} | |",
    ]
    for stage, (rss, hwm) in ours.memory_kb.items():
        floor_rss, floor_hwm = floor.memory_kb.get(stage, (0, 0))
        rows.append(f"| VmRSS / VmHWM {stage} (MB) | - | {floor_rss / 1024:.1f} / {floor_hwm / 1024:.1f} "
                    f"| {rss / 1024:.1f} / {hwm / 1024:.1f} | {hwm / max(floor_hwm, 1):.2f}x (HWM) |")
    rows.append(f"| ingest: events per second, POST to encoded OTLP | - | {floor_rate:,.0f} (read only) "
                f"| {ours_rate:,.0f} | {ours_rate / floor_rate:.2f}x |")
    rows.append(f"| layer size, unzipped / zipped (MB) | - | - | {unzipped / 1e6:.1f} / {zipped / 1e6:.1f} | |")
    text = "\n".join(rows) + f"\n\n{args.repeats} cold starts each, interleaved; median (min-max)."
    publish(text, MARKS, write=args.write)
    return 0


def main() -> int:
    arguments = parser(__doc__)
    arguments.add_argument("--repeats", type=int, default=7)
    return asyncio.run(main_async(arguments.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
