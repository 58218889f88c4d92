"""`make phoenix`: Arize Phoenix on loopback, the sample functions in the local sandbox exporting their traces to it,
then where to see them. Phoenix keeps serving until Ctrl-C (or stops at once with --exit)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from e2e.browser import BrowserError, capture
from e2e.phoenix import PhoenixError, running_phoenix
from e2e.phoenix_api import PhoenixAPI, StoredSpan, project_url, trace_url
from e2e.workload import FUNCTION_NAME, ROOT, Run, export_env, run_sample_functions
from sandbox.runner import DEFAULT_WORK_DIR


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="python -m e2e", description=__doc__)
    found.add_argument("--phoenix", type=Path, default=ROOT / ".venv-phoenix" / "bin" / "phoenix",
                       help="the `phoenix` command of its own environment")
    found.add_argument("--port", type=int, default=6006, help="Phoenix's UI, API and OTLP/HTTP port; 0 for any")
    found.add_argument("--layer", type=Path, default=ROOT / "build" / "layer")
    found.add_argument("--runtime-dir", type=Path, default=ROOT / ".venv" / "lambda-runtime")
    found.add_argument("--phoenix-dir", type=Path, default=ROOT / "build" / "phoenix",
                       help="Phoenix's working directory: its database (replaced each run) and its log")
    found.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="the sandbox's")
    found.add_argument("--screenshot", type=Path, default=None,
                       help="also save a screenshot of the first invocation's trace (needs chromium)")
    found.add_argument("--exit", action="store_true", help="stop Phoenix once the traces are shown")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.layer / "extensions").is_dir():
        print(f"error: no layer in {args.layer}; run `make layer-local` first", file=sys.stderr)
        return 2
    if not (args.runtime_dir / "awslambdaric").is_dir():
        print(f"error: no awslambdaric in {args.runtime_dir}; run `make venv` first", file=sys.stderr)
        return 2
    try:
        return asyncio.run(show(args))
    except (PhoenixError, BrowserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # during the run: Phoenix and the sandbox are stopped by then
        return 130


async def show(args: argparse.Namespace) -> int:
    for stale in args.phoenix_dir.glob("phoenix.db*"):  # a fresh database: this run's traces only
        stale.unlink()
    async with running_phoenix(args.phoenix, args.phoenix_dir.resolve(), port=args.port) as phoenix:
        _say(f"Phoenix is up at {phoenix.url} (log: {phoenix.log_path})")
        run = await run_sample_functions(layer=args.layer, runtime_dir=args.runtime_dir, work_dir=args.work_dir,
                                         env=export_env(phoenix.traces_endpoint))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            api = PhoenixAPI(session, phoenix.url)
            traces = await _traces_in(api, run)
            project_id = await api.project_id()
        for record in run.invocations:
            trace_id = traces.get(record.request_id)
            where = trace_url(phoenix.url, project_id, trace_id) if trace_id else "NOT IN PHOENIX"
            cold = " cold" if record.cold_start else ""
            print(f"{record.status:8} {record.request_id}{cold:5}  {where}")
        print(f"\nThe traces of {FUNCTION_NAME} in Phoenix: {project_url(phoenix.url, project_id)}")
        first = traces.get(run.invocations[0].request_id)
        if args.screenshot is not None and first is not None:
            shot = await capture(trace_url(phoenix.url, project_id, first), args.screenshot)
            _say(f"screenshot of {shot.url} in {shot.screenshot}")
        if not args.exit:
            _say("Phoenix keeps running; Ctrl-C stops it")
            await _until_interrupted()
    return 0 if len(traces) == len(run.invocations) else 1


async def _traces_in(api: PhoenixAPI, run: Run) -> dict[str, str]:
    """Request id -> trace id, from the invocation spans Phoenix stored (their trace id is the caller's)."""
    wanted = {record.request_id for record in run.invocations}

    def found(spans: list[StoredSpan]) -> dict[str, str]:
        return {str(span.attributes.get("faas.invocation_id")): span.trace_id for span in spans
                if span.name == FUNCTION_NAME}

    spans = await api.spans_when(lambda spans: wanted <= found(spans).keys(), timeout_s=30)
    return {request_id: trace for request_id, trace in found(spans).items() if request_id in wanted}


async def _until_interrupted() -> None:
    """Until SIGINT or SIGTERM: then the caller's `async with` stops Phoenix in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
