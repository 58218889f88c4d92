"""What parsing a Telemetry API batch costs per event: parse_batch against orjson.loads alone (the floor: the JSON
decode that any parser pays), for platform events and function log lines. In process, one core.
Run: `make bench-parse`."""

from __future__ import annotations

import timeit
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson

from bench.common import parser, publish
from bench.startup import batch_of
from extension.wire import parse_batch

MARKS = ("<!-- parse-results:begin -->", "<!-- parse-results:end -->")
INVOCATIONS = 50
REPEATS = 7
BEGIN = datetime(2024, 5, 20, 16, 29, 45, 8000, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """The shape Lambda writes: milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def times(step: timedelta) -> Iterator[str]:
    moment = BEGIN
    while True:
        yield iso(moment)
        moment += step


def retimed(items: list[dict[str, Any]], step: timedelta) -> list[dict[str, Any]]:
    """`items` with every time and span start its own, `step` after the one before."""
    clock = times(step)
    for item in items:
        item["time"] = next(clock)
        for span in item["record"].get("spans", []) if isinstance(item["record"], dict) else []:
            span["start"] = next(clock)
    return items


def platform_events(step: timedelta | None, *, traced: bool = False) -> bytes:
    """batch_of's invocations (start, runtimeDone with 3 spans, report); its times all alike unless retimed, and
    with `traced` the `tracing` Lambda adds to each record when X-Ray tracing is active."""
    items = orjson.loads(batch_of(INVOCATIONS, 0))
    if traced:
        for number, item in enumerate(items):
            invocation = number // 3
            item["record"]["tracing"] = {
                "spanId": f"{invocation:016x}", "type": "X-Amzn-Trace-Id",
                "value": f"Root=1-5759e988-{invocation:024x};Parent=53995c3f42cd8ad8;Sampled=1"}
    return orjson.dumps(items if step is None else retimed(items, step))


def function_lines(record: Callable[[int], str | dict[str, Any]]) -> bytes:
    """As many function log lines as batch_of has events, 1 ms apart."""
    clock = times(timedelta(milliseconds=1))
    return orjson.dumps([{"time": next(clock), "type": "function", "record": record(n)}
                         for n in range(3 * INVOCATIONS)])


def text_line(n: int) -> str:
    return f"[INFO]\t2024-05-20T16:29:45.{n % 1000:03d}Z\t00000000-0000-0000-0000-000000000001\tprocessed item {n}\n"


def json_line(n: int) -> dict[str, Any]:
    return {"timestamp": f"2024-05-20T16:29:45.{n % 1000:03d}Z", "level": "INFO",
            "requestId": "00000000-0000-0000-0000-000000000001", "message": f"processed item {n}"}


CASES: dict[str, Callable[[], bytes]] = {
    "platform events, one time (batch_of)": lambda: platform_events(None),
    "platform events, 3 ms apart": lambda: platform_events(timedelta(milliseconds=3)),
    "platform events, each time in a new second": lambda: platform_events(timedelta(seconds=1, milliseconds=7)),
    "platform events with X-Ray tracing, 3 ms apart": lambda: platform_events(timedelta(milliseconds=3), traced=True),
    "function text lines, 1 ms apart": lambda: function_lines(text_line),
    "function JSON lines, 1 ms apart": lambda: function_lines(json_line),
}


def us_per_event(run: Callable[[], object], events: int) -> float:
    """Best of REPEATS, each about 0.2 s, with the garbage collector on as in production (timeit turns it off)."""
    timer = timeit.Timer(run, setup="import gc; gc.enable()")
    number = max(1, int(0.2 / max(timer.timeit(1), 1e-7)))
    return min(timer.repeat(REPEATS, number)) / number / events * 1e6


def main() -> None:
    args = parser(__doc__).parse_args()
    lines = ["| batch | events | orjson.loads µs/event | parse_batch µs/event | vs loads | events/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, build in CASES.items():
        raw = build()
        batch = parse_batch(raw)
        events = len(orjson.loads(raw))
        if batch.malformed or len(batch.events) != events:
            raise SystemExit(f"{name}: {batch.malformed} of {events} items malformed; nothing to measure")
        floor = us_per_event(partial(orjson.loads, raw), events)
        parse = us_per_event(partial(parse_batch, raw), events)
        lines.append(f"| {name} | {events} | {floor:.2f} | {parse:.2f} | {parse / floor:.1f}x | {1e6 / parse:,.0f} |")
    lines.append(f"\nBest of {REPEATS} runs of about 0.2 s each, garbage collector on.")
    publish("\n".join(lines), MARKS, write=args.write)


if __name__ == "__main__":
    main()
