"""Received OTLP spans as a terminal waterfall: one tree per trace, bars on the trace's own time axis."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from sandbox.otlp_receiver import (
    AttrValue,
    ReceivedSpan,
    Signal,
    decode_recorded,
    load_recorded,
    spans_of,
)

__all__ = ["MIN_WIDTH", "main", "render_waterfall", "summarize"]

MIN_WIDTH: Final = 60
NO_SPANS: Final = "no spans received"

_INDENT: Final = "  "
_BAR: Final = "█"
_AXIS: Final = "·"
_ELLIPSIS: Final = "…"
_DURATION_WIDTH: Final = len("99999.999 ms")
_RED: Final = "\x1b[31m"
_BOLD: Final = "\x1b[1m"
_RESET: Final = "\x1b[0m"

# The attributes that carry an error's type, whichever convention set them.
_ERROR_TYPE_KEYS: Final = ("aws.lambda.error_type", "aws.lambda.init.error_type", "error.type", "exception.type")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layout:
    """Column widths of a span line: label, duration, bar, then the details take what is left."""

    width: int
    label: int
    bar: int

    @classmethod
    def for_width(cls, width: int) -> _Layout:
        if width < MIN_WIDTH:
            raise ValueError(f"width must be at least {MIN_WIDTH}, got {width}")
        # At 100 columns: a 22-column label, a 25-cell bar, and 36 columns left for status and attributes.
        return cls(width=width, label=max(16, min(40, width * 22 // 100)), bar=width // 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    """One span in print order: how deep it sits, and its parent when the parent is in the trace."""

    depth: int
    span: ReceivedSpan
    parent: ReceivedSpan | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Trace:
    """One trace's spans in print order, each with its depth, and the window they cover."""

    trace_id: str
    rows: tuple[_Row, ...]
    start_unix_nano: int
    end_unix_nano: int

    @property
    def duration_nano(self) -> int:
        return self.end_unix_nano - self.start_unix_nano


def render_waterfall(spans: Sequence[ReceivedSpan], *, width: int = 100, color: bool = False) -> str:
    """A header per trace, then one line per span: indented name, duration, bar, status, key attributes.

    Traces come in order of their earliest start; every line fits in `width` columns (ANSI codes aside).
    """
    layout = _Layout.for_width(width)
    if not spans:
        return NO_SPANS
    blocks = [_render_trace(trace, layout, color) for trace in _traces(spans)]
    return "\n\n".join(blocks)


def summarize(spans: Sequence[ReceivedSpan]) -> str:
    """One line: how many traces, spans and error spans."""
    traces = len({span.trace_id for span in spans})
    errors = sum(_is_error(span) for span in spans)
    return f"{_count(traces, 'trace')}, {_count(len(spans), 'span')}, {_count(errors, 'error span')}"


# --- grouping ---------------------------------------------------------------------------------


def _traces(spans: Iterable[ReceivedSpan]) -> list[_Trace]:
    by_trace: defaultdict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    traces = [
        _Trace(
            trace_id=trace_id,
            rows=tuple(_tree(members)),
            start_unix_nano=min(_start(span) for span in members),
            end_unix_nano=max(_end(span) for span in members),
        )
        for trace_id, members in by_trace.items()
    ]
    return sorted(traces, key=lambda trace: (trace.start_unix_nano, trace.trace_id))


def _tree(spans: Sequence[ReceivedSpan]) -> list[_Row]:
    """Depth-first, children by start time; a span whose parent is not in the trace is a root."""
    ordered = sorted(range(len(spans)), key=lambda i: _order_key(spans[i]))
    span_ids = {spans[i].span_id for i in ordered}
    children: defaultdict[str, list[int]] = defaultdict(list)
    roots: list[int] = []
    for i in ordered:
        parent = spans[i].parent_span_id
        if parent and parent in span_ids and parent != spans[i].span_id:
            children[parent].append(i)
        else:
            roots.append(i)
    rows: list[_Row] = []
    seen: set[int] = set()

    def visit(i: int, depth: int, parent: ReceivedSpan | None) -> None:
        # Indices, not span ids: a span exported twice still prints twice, but its children only once.
        seen.add(i)
        rows.append(_Row(depth=depth, span=spans[i], parent=parent))
        for child in children[spans[i].span_id]:
            if child not in seen:
                visit(child, depth + 1, spans[i])

    for i in roots:
        visit(i, 0, None)
    # Spans whose parents form a cycle are reachable from no root; show them rather than lose them.
    for i in ordered:
        if i not in seen:
            visit(i, 0, None)
    return rows


def _order_key(span: ReceivedSpan) -> tuple[int, int, str, str]:
    return (_start(span), _end(span), span.name, span.span_id)


def _start(span: ReceivedSpan) -> int:
    return int(span.span.start_time_unix_nano)


def _end(span: ReceivedSpan) -> int:
    # An unset or inverted end is drawn as an instant rather than stretching the axis backwards.
    return max(_start(span), int(span.span.end_time_unix_nano))


# --- lines ------------------------------------------------------------------------------------


def _render_trace(trace: _Trace, layout: _Layout, color: bool) -> str:
    root = trace.rows[0].span
    header = _fit(
        f"trace {trace.trace_id}  {root.name}  {_duration(trace.duration_nano)}  {_count(len(trace.rows), 'span')}",
        layout.width,
    )
    lines = [_paint(header, _BOLD, color)]
    for row in trace.rows:
        lines.append(_paint(_span_line(row, trace, layout), _RED, color and _is_error(row.span)))
    return "\n".join(lines)


def _span_line(row: _Row, trace: _Trace, layout: _Layout) -> str:
    span = row.span
    # Deep trees keep half the label for the name.
    indent = _INDENT * min(row.depth, layout.label // (2 * len(_INDENT)))
    label = _fit(indent + span.name, layout.label).ljust(layout.label)
    duration = _duration(_end(span) - _start(span)).rjust(_DURATION_WIDTH)
    bar = _bar(span, trace, layout.bar)
    details = "  ".join(part for part in (_status(span), _key_attributes(span, row.parent)) if part)
    return _fit(f"{label} {duration} |{bar}| {details}", layout.width)


def _bar(span: ReceivedSpan, trace: _Trace, columns: int) -> str:
    """The span on the trace's axis: offsets scaled to `columns`, rounded, never less than one cell."""
    total = trace.duration_nano
    if total == 0:
        first, last = 0, 1
    else:
        first = _scale(_start(span) - trace.start_unix_nano, total, columns)
        last = _scale(_end(span) - trace.start_unix_nano, total, columns)
    first = min(first, columns - 1)
    last = max(last, first + 1)
    return _AXIS * first + _BAR * (last - first) + _AXIS * (columns - last)


def _scale(offset_nano: int, total_nano: int, columns: int) -> int:
    # Integer rounding: nanosecond timestamps are past float's exact range.
    return (2 * offset_nano * columns + total_nano) // (2 * total_nano)


def _status(span: ReceivedSpan) -> str:
    # UNSET counts as OK: the extension leaves successful spans unset, as the OTel spec advises.
    if not _is_error(span):
        return "OK"
    message = span.span.status.message
    return f"ERROR {message}" if message else "ERROR"


def _key_attributes(span: ReceivedSpan, parent: ReceivedSpan | None) -> str:
    attributes = span.attributes
    parts: list[str] = []
    error_type = next((value for key in _ERROR_TYPE_KEYS if isinstance(value := attributes.get(key), str)), None)
    # The extension puts the error type in the status message too; say it once.
    if error_type is not None and error_type != span.span.status.message:
        parts.append(f"error={error_type}")
    # Warm is the usual case: only a cold start is worth the columns.
    if attributes.get("faas.coldstart") is True:
        parts.append("cold")
    billed = attributes.get("aws.lambda.billed_duration_ms")
    if billed is not None:
        parts.append(f"billed={_number(billed)}ms")
    used = attributes.get("aws.lambda.max_memory_used_mb")
    if used is not None:
        size = attributes.get("aws.lambda.memory_size_mb")
        parts.append(f"mem={_number(used)}/{_number(size)}MB" if size is not None else f"mem={_number(used)}MB")
    invocation_id = attributes.get("faas.invocation_id")
    # Said once per invocation: the report span repeats its parent's id.
    if isinstance(invocation_id, str) and (
        parent is None or parent.attributes.get("faas.invocation_id") != invocation_id
    ):
        # A request id is 36 characters; its first 8 find it in the logs, like a short commit hash.
        parts.append(f"req={invocation_id[:8]}")
    return " ".join(parts)


def _is_error(span: ReceivedSpan) -> bool:
    return span.span.status.code == Status.STATUS_CODE_ERROR


def _duration(nano: int) -> str:
    micros = (nano + 500) // 1000
    return f"{micros // 1000}.{micros % 1000:03d} ms"


def _number(value: AttrValue) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fit(text: str, columns: int) -> str:
    return text if len(text) <= columns else text[: columns - 1] + _ELLIPSIS


def _paint(text: str, code: str, enabled: bool) -> str:
    return f"{code}{text}{_RESET}" if enabled else text


# --- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sandbox.waterfall RECORD.jsonl`: print the waterfall of the traces a receiver recorded."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.waterfall", description=__doc__)
    parser.add_argument("record", type=Path, help="the JSON-lines file an OTLPReceiver(record_path=...) wrote")
    parser.add_argument("--width", type=int, default=100, help=f"columns, at least {MIN_WIDTH} (default 100)")
    parser.add_argument("--color", action="store_true", help="red for errors (ANSI)")
    args = parser.parse_args(argv)
    if args.width < MIN_WIDTH:
        parser.error(f"--width must be at least {MIN_WIDTH}")
    try:
        requests = [decode_recorded(entry) for entry in load_recorded(args.record) if entry["signal"] == Signal.TRACES]
        spans = [span for r in requests if isinstance(r, ExportTraceServiceRequest) for span in spans_of(r)]
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read {args.record}: {exc}", file=sys.stderr)
        return 1
    print(render_waterfall(spans, width=args.width, color=args.color))
    print(summarize(spans))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
