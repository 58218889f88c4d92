"""Command line: run a function with a layer attached in the local sandbox and print what each phase did."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sandbox.otlp_receiver import OTLPReceiver
from sandbox.records import InvokeRecord
from sandbox.runner import DEFAULT_WORK_DIR, LocalLambda, print_output
from sandbox.settings import FunctionSettings
from sandbox.waterfall import render_waterfall, summarize

DEFAULT_RUNTIME_DIR = Path(".venv/lambda-runtime")


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="init, N invocations, shutdown; the last line is a JSON summary")
    run.add_argument("--function-dir", type=Path, default=Path("examples/functions"))
    run.add_argument("--handler", default="app.succeed")
    run.add_argument("--layer", type=Path, default=None, help="a directory laid out as /opt (extensions/...)")
    run.add_argument("--invocations", type=int, default=1)
    run.add_argument("--payload", default="{}", help="JSON event for every invocation")
    run.add_argument("--interval-ms", type=float, default=0.0, help="idle time between invocations")
    run.add_argument("--trace-header", default=None, help="X-Amzn-Trace-Id of the invocations")
    run.add_argument("--timeout-s", type=float, default=3.0)
    run.add_argument("--memory-mb", type=int, default=128)
    run.add_argument("--function-name", default="sandbox-function")
    run.add_argument("--env", type=_env_pair, action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--runtime-dir", type=Path, default=DEFAULT_RUNTIME_DIR)
    run.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    # Not 4318: that is where the extension's own in-function receiver listens (OTEL_LAMBDA_RECEIVER_PORT).
    run.add_argument("--receiver-port", type=int, default=4319, help="local OTLP/HTTP receiver; 0 for any")
    run.add_argument("--record", type=Path, default=None, help="append what the receiver gets to this JSONL file")
    run.add_argument("--quiet", action="store_true", help="do not echo the processes' output")
    demo = commands.add_parser("demo", help="the sample functions with the extension attached, then the traces")
    demo.add_argument("--layer", type=Path, default=Path("build/layer"))
    demo.add_argument("--runtime-dir", type=Path, default=DEFAULT_RUNTIME_DIR)
    demo.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    demo.add_argument("--receiver-port", type=int, default=0)
    demo.add_argument("--record", type=Path, default=Path("build/demo-traces.jsonl"))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.runtime_dir / "awslambdaric").is_dir():
        print(f"error: no awslambdaric in {args.runtime_dir}; run `make venv` first", file=sys.stderr)
        return 2
    if args.command == "demo":
        return asyncio.run(demo(args))
    summary = asyncio.run(run(args))
    print(json.dumps(summary))
    return 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with OTLPReceiver(port=args.receiver_port, record_path=args.record) as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **dict(args.env)}
        settings = FunctionSettings(
            function_dir=args.function_dir.resolve(), handler=args.handler, runtime_dir=args.runtime_dir.resolve(),
            layer_dir=args.layer.resolve() if args.layer else None, function_name=args.function_name,
            memory_mb=args.memory_mb, timeout_s=args.timeout_s, env=env)
        sandbox = LocalLambda(settings, work_dir=args.work_dir, on_output=_discard if args.quiet else print_output)
        async with sandbox:
            init = sandbox.init_record
            assert init is not None
            _say(f"INIT {init.phase} {init.status} in {init.duration_ms:.1f} ms" +
                 "".join(f"; {e.name} ready after {e.ready_ms} ms" for e in init.extensions))
            for number in range(args.invocations):
                if number and args.interval_ms:
                    await asyncio.sleep(args.interval_ms / 1000)
                record = await sandbox.invoke(args.payload.encode(), trace_header=args.trace_header)
                _say(_invoke_line(record))
            shutdown = await sandbox.shutdown()
            _say(f"SHUTDOWN {shutdown.reason}: runtime exited after {shutdown.runtime_exit_ms} ms" +
                 "".join(f"; {e.name} {'exited' if not e.killed else 'KILLED'} after {e.exit_ms} ms"
                         for e in shutdown.extensions))
        return {
            "init": {"status": init.status, "error_type": init.error_type, "duration_ms": init.duration_ms},
            "invocations": [record.summary() for record in sandbox.invocations],
            "extensions": [{"name": e.name, "shutdown_exit_ms": e.exit_ms,
                            "exited_before_deadline": e.exited_before_deadline} for e in shutdown.extensions],
            "received": {"spans": len(receiver.spans()), "log_records": len(receiver.log_records()),
                         "metrics": len(receiver.metrics())},
        }


def _invoke_line(record: InvokeRecord) -> str:
    outcome = record.status + (f" ({record.error_type})" if record.error_type else "")
    return (f"INVOKE {record.request_id} {outcome}{' cold' if record.cold_start else ''}: "
            f"response after {record.response_latency_ms} ms, duration {record.duration_ms} ms, "
            f"post-runtime extensions {record.post_runtime_extension_ms} ms")


def _discard(source: str, line: str) -> None:
    pass


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# The demo: a caller that traces (X-Ray headers) drives one function through a cold start, warm
# invocations, an error, a noisy one, a timeout (which resets the environment) and a re-init.
DEMO_SCRIPT: Final = [
    {"action": "succeed"}, {"action": "succeed"}, {"action": "succeed", "sleep_ms": 40}, {"action": "fail"},
    {"action": "chatty", "lines": 200}, {"action": "succeed"}, {"action": "time_out"}, {"action": "succeed"},
    {"action": "succeed", "sleep_ms": 20}, {"action": "succeed"}, {"action": "succeed"},
]


def xray_header() -> str:
    """A caller's trace header, as API Gateway or another traced service would send it."""
    unique = secrets.token_hex(12)
    return f"Root=1-{int(time.time()):08x}-{unique};Parent={secrets.token_hex(8)};Sampled=1"


async def demo(args: argparse.Namespace) -> int:
    if not (args.layer / "extensions").is_dir():
        print(f"error: no layer in {args.layer}; run `make layer-local` first", file=sys.stderr)
        return 2
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.unlink(missing_ok=True)
    async with OTLPReceiver(port=args.receiver_port, record_path=args.record) as receiver:
        settings = FunctionSettings(
            function_dir=Path("examples/functions").resolve(), handler="app.mixed", function_name="demo-function",
            runtime_dir=args.runtime_dir.resolve(), layer_dir=args.layer.resolve(), timeout_s=2.0,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "demo-function"})
        async with LocalLambda(settings, work_dir=args.work_dir, on_output=_discard) as sandbox:
            assert sandbox.init_record is not None
            _say(f"INIT {sandbox.init_record.status} in {sandbox.init_record.duration_ms:.1f} ms")
            for payload in DEMO_SCRIPT:
                record = await sandbox.invoke(json.dumps(payload).encode(), trace_header=xray_header())
                _say(_invoke_line(record))
            shutdown = await sandbox.shutdown()
            _say("SHUTDOWN: " + ", ".join(f"{e.name} exited after {e.exit_ms} ms" for e in shutdown.extensions))
        print(render_waterfall(receiver.spans(), color=sys.stdout.isatty()))
        print(summarize(receiver.spans()))
        print(f"(recorded in {args.record})")
    return 0
