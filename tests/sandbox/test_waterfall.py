"""The terminal waterfall of received spans: tree order, bars on the trace's axis, status and key attributes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from sandbox.otlp_receiver import ReceivedSpan, attributes_to_dict, export_request_to_json
from sandbox.waterfall import main, render_waterfall, summarize

T0 = 1_700_000_000_000_000_000  # a realistic epoch in ns: far past float's exact integers
MS = 1_000_000
TRACE_A = "5b8efff798038103d269b633813fc60c"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
REMOTE_PARENT = "53995c3f42cd8ad8"  # an X-Ray parent that never reaches the receiver
REQUEST_ID = "8f3c2a1b-7dec-11d0-a765-00a0c91e6bf6"


def any_value(value: str | bool | int | float) -> AnyValue:
    match value:
        case bool():
            return AnyValue(bool_value=value)
        case int():
            return AnyValue(int_value=value)
        case float():
            return AnyValue(double_value=value)
        case str():
            return AnyValue(string_value=value)


def make_span(
    name: str,
    *,
    span_id: str,
    parent: str = "",
    trace: str = TRACE_A,
    start_ms: float = 0,
    end_ms: float = 10,
    error: str | None = None,
    attributes: dict[str, str | bool | int | float] | None = None,
) -> Span:
    span = Span(
        name=name,
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        start_time_unix_nano=T0 + round(start_ms * MS),
        end_time_unix_nano=T0 + round(end_ms * MS),
        attributes=[KeyValue(key=key, value=any_value(value)) for key, value in (attributes or {}).items()],
    )
    if error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


def received(span: Span) -> ReceivedSpan:
    return ReceivedSpan(
        resource={"service.name": "my-function"},
        scope_name="lambda-otel-extension",
        scope_version="0.1.0",
        span=span,
        attributes=attributes_to_dict(span.attributes),
    )


def spans(*protos: Span) -> list[ReceivedSpan]:
    return [received(span) for span in protos]


def span_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("trace ")]


def line_of(text: str, name: str) -> str:
    (line,) = [line for line in span_lines(text) if line.strip().startswith(name + " ")]
    return line


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def bar_of(line: str) -> str:
    return line[line.index("|") + 1 : line.rindex("|")]


def bar_start(line: str) -> float:
    """Where the bar starts, as a fraction of the axis."""
    bar = bar_of(line)
    return bar.index("█") / len(bar)


def invocation(error: str | None = None) -> list[Span]:
    """One invocation as the extension shapes it, with its children given out of start order."""
    return [
        make_span("report", span_id="00000000000000b4", parent="00000000000000a1", start_ms=0, end_ms=100),
        make_span("extensionOverhead", span_id="00000000000000c5", parent="00000000000000b4", start_ms=80, end_ms=100),
        make_span("responseLatency", span_id="00000000000000b2", parent="00000000000000a1", start_ms=10, end_ms=40),
        make_span(
            "my-function",
            span_id="00000000000000a1",
            parent=REMOTE_PARENT,
            start_ms=0,
            end_ms=80,
            error=error,
            attributes={"faas.invocation_id": REQUEST_ID, "faas.coldstart": True},
        ),
        make_span("responseDuration", span_id="00000000000000b3", parent="00000000000000a1", start_ms=40, end_ms=50),
    ]


# --- tree ---------------------------------------------------------------------------------------


def test_spans_print_as_a_tree_children_by_start_time() -> None:
    text = render_waterfall(spans(*invocation()))

    names = [line.split()[0] for line in span_lines(text)]
    # report starts with its parent (0 ms) but ends later, so it comes first among the children.
    assert names == ["my-function", "report", "extensionOverhead", "responseLatency", "responseDuration"]
    depths = [indent_of(line) for line in span_lines(text)]
    assert depths == [0, 2, 4, 2, 2]


def test_children_sit_under_their_own_parent() -> None:
    text = render_waterfall(
        spans(
            make_span("root", span_id="00000000000000a1", start_ms=0, end_ms=100),
            make_span("second", span_id="00000000000000b2", parent="00000000000000a1", start_ms=50, end_ms=90),
            make_span("first", span_id="00000000000000b1", parent="00000000000000a1", start_ms=10, end_ms=40),
            make_span("child-of-second", span_id="00000000000000c2", parent="00000000000000b2", start_ms=60, end_ms=70),
            make_span("child-of-first", span_id="00000000000000c1", parent="00000000000000b1", start_ms=20, end_ms=30),
        )
    )

    names = [line.split()[0] for line in span_lines(text)]
    assert names == ["root", "first", "child-of-first", "second", "child-of-second"]
    assert indent_of(line_of(text, "child-of-first")) == indent_of(line_of(text, "child-of-second")) == 4


def test_a_span_whose_parent_is_not_in_the_trace_is_a_root() -> None:
    text = render_waterfall(
        spans(
            make_span("invocation", span_id="00000000000000a1", parent=REMOTE_PARENT, start_ms=0, end_ms=50),
            make_span("late-orphan", span_id="00000000000000a2", parent="00000000000000ff", start_ms=60, end_ms=70),
            make_span("child", span_id="00000000000000b1", parent="00000000000000a1", start_ms=10, end_ms=20),
        )
    )

    assert [line.split()[0] for line in span_lines(text)] == ["invocation", "child", "late-orphan"]
    assert indent_of(line_of(text, "invocation")) == indent_of(line_of(text, "late-orphan")) == 0
    assert indent_of(line_of(text, "child")) == 2


def test_spans_whose_parents_form_a_cycle_are_still_shown() -> None:
    text = render_waterfall(
        spans(
            make_span("one", span_id="00000000000000a1", parent="00000000000000a2", start_ms=0, end_ms=10),
            make_span("two", span_id="00000000000000a2", parent="00000000000000a1", start_ms=5, end_ms=10),
        )
    )

    assert [line.split()[0] for line in span_lines(text)] == ["one", "two"]


# --- traces -------------------------------------------------------------------------------------


def test_traces_are_ordered_by_their_earliest_start_with_a_header_each() -> None:
    later = make_span("later-function", trace=TRACE_A, span_id="00000000000000a1", start_ms=500, end_ms=600)
    # The earlier trace's root starts late, but its child starts first: the trace starts with the child.
    earlier = [
        make_span("earlier-function", trace=TRACE_B, span_id="00000000000000b1", start_ms=200, end_ms=212.345),
        make_span("init", trace=TRACE_B, span_id="00000000000000b2", parent="00000000000000b1", start_ms=0, end_ms=150),
    ]
    text = render_waterfall(spans(later, *earlier))

    headers = [line for line in text.splitlines() if line.startswith("trace ")]
    assert headers == [
        f"trace {TRACE_B}  earlier-function  212.345 ms  2 spans",
        f"trace {TRACE_A}  later-function  100.000 ms  1 span",
    ]
    assert text.index("init") < text.index("later-function  ")


# --- bars ---------------------------------------------------------------------------------------


def test_bars_are_placed_on_the_trace_axis_in_proportion() -> None:
    text = render_waterfall(
        spans(
            make_span("whole", span_id="00000000000000a1", start_ms=0, end_ms=100),
            make_span("second-half", span_id="00000000000000a2", parent="00000000000000a1", start_ms=50, end_ms=100),
            make_span("quarter", span_id="00000000000000a3", parent="00000000000000a1", start_ms=25, end_ms=50),
        )
    )

    whole, half, quarter = line_of(text, "whole"), line_of(text, "second-half"), line_of(text, "quarter")
    axis = len(bar_of(whole))
    assert bar_of(whole) == "█" * axis
    assert bar_start(half) == pytest.approx(0.5, abs=1 / axis)
    assert bar_of(half).endswith("█")
    assert bar_start(quarter) == pytest.approx(0.25, abs=1 / axis)
    assert bar_of(quarter).count("█") == pytest.approx(axis / 4, abs=1)
    # Every bar sits on the same columns, whatever the depth or name.
    assert whole.index("|") == half.index("|") == quarter.index("|")


def test_a_very_short_span_still_gets_one_cell() -> None:
    text = render_waterfall(
        spans(
            make_span("long", span_id="00000000000000a1", start_ms=0, end_ms=10_000),
            make_span(
                "blink", span_id="00000000000000a2", parent="00000000000000a1", start_ms=10_000, end_ms=10_000.001
            ),
        )
    )

    bar = bar_of(line_of(text, "blink"))
    assert bar.count("█") == 1
    assert bar.endswith("█")


def test_a_trace_of_instant_spans_draws_one_cell_at_the_start() -> None:
    text = render_waterfall(spans(make_span("instant", span_id="00000000000000a1", start_ms=5, end_ms=5)))

    assert bar_of(line_of(text, "instant")).startswith("█·")
    assert "0.000 ms" in line_of(text, "instant")


# --- durations, status, attributes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("end_ms", "shown"),
    [(12.345, "12.345 ms"), (0.0004, "0.000 ms"), (1.2345678, "1.235 ms"), (2000, "2000.000 ms")],
)
def test_durations_are_milliseconds_with_three_decimals(end_ms: float, shown: str) -> None:
    text = render_waterfall(spans(make_span("op", span_id="00000000000000a1", start_ms=0, end_ms=end_ms)))

    assert f" {shown} |" in line_of(text, "op")


def test_error_status_and_its_message_are_shown_ok_otherwise() -> None:
    text = render_waterfall(
        spans(*invocation(error="Runtime.ExitError"))
        + spans(
            make_span(
                "timed-out",
                trace=TRACE_B,
                span_id="00000000000000f1",
                error="timeout",
                attributes={"aws.lambda.error_type": "Sandbox.Timedout"},
            )
        ),
        width=120,
    )

    assert "| ERROR Runtime.ExitError" in line_of(text, "my-function")
    assert "| OK" in line_of(text, "report")
    # A type that differs from the status message is shown too; one that repeats it is not.
    assert "| ERROR timeout  error=Sandbox.Timedout" in line_of(text, "timed-out")
    assert line_of(text, "my-function").count("Runtime.ExitError") == 1


def test_key_attributes_are_shown_once_per_invocation() -> None:
    report_attributes: dict[str, str | bool | int | float] = {
        "faas.invocation_id": REQUEST_ID,
        "aws.lambda.billed_duration_ms": 100,
        "aws.lambda.max_memory_used_mb": 80,
        "aws.lambda.memory_size_mb": 128,
    }
    text = render_waterfall(
        spans(
            make_span(
                "my-function",
                span_id="00000000000000a1",
                parent=REMOTE_PARENT,
                attributes={"faas.invocation_id": REQUEST_ID, "faas.coldstart": True},
            ),
            make_span("report", span_id="00000000000000a2", parent="00000000000000a1", attributes=report_attributes),
            make_span("warm", trace=TRACE_B, span_id="00000000000000b1", attributes={"faas.coldstart": False}),
        )
    )

    assert line_of(text, "my-function").endswith("| OK  cold req=8f3c2a1b")
    assert line_of(text, "report").endswith("| OK  billed=100ms mem=80/128MB")
    assert line_of(text, "warm").endswith("| OK")


# --- layout and color ---------------------------------------------------------------------------


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_every_line_fits_the_width_and_long_names_are_cut_with_an_ellipsis(width: int) -> None:
    long_name = "a-handler-with-a-very-long-descriptive-name-indeed"
    text = render_waterfall(
        spans(
            *invocation(error="Runtime.ExitError: a long message that goes on past the edge of the terminal"),
            make_span(long_name, span_id="00000000000000d1", parent="00000000000000c5", start_ms=90, end_ms=95),
        ),
        width=width,
    )

    assert all(len(line) <= width for line in text.splitlines())
    assert long_name not in text
    assert "…" in next(line for line in span_lines(text) if "a-handler" in line)


def test_a_width_too_narrow_for_the_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 60"):
        render_waterfall([], width=59)


def test_color_is_off_by_default_and_marks_errors_red_when_asked() -> None:
    failing = spans(*invocation(error="Runtime.ExitError"))

    assert "\x1b" not in render_waterfall(failing)
    colored = render_waterfall(failing, color=True)
    (error_line,) = [line for line in colored.splitlines() if "ERROR" in line]
    assert error_line.startswith("\x1b[31m")
    assert error_line.endswith("\x1b[0m")
    assert not [line for line in colored.splitlines() if "| OK" in line and line.startswith("\x1b[31m")]


# --- empty input and summary --------------------------------------------------------------------


def test_no_spans_renders_a_clear_line() -> None:
    assert render_waterfall([]) == "no spans received"
    assert summarize([]) == "0 traces, 0 spans, 0 error spans"


def test_summary_counts_traces_spans_and_errors() -> None:
    received_spans = spans(*invocation(error="Runtime.ExitError")) + spans(
        make_span("other", trace=TRACE_B, span_id="00000000000000f1")
    )

    assert summarize(received_spans) == "2 traces, 6 spans, 1 error span"


# --- command line -------------------------------------------------------------------------------


def record_entry(signal: str, message: ExportTraceServiceRequest | ExportLogsServiceRequest) -> str:
    """One line as OTLPReceiver(record_path=...) appends it."""
    entry = {
        "signal": signal,
        "received_unix_nano": T0,
        "content_type": "application/x-protobuf",
        "body": export_request_to_json(message),
    }
    return json.dumps(entry) + "\n"


def test_main_prints_the_waterfall_of_a_record_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=invocation(error="Runtime.ExitError"))])]
    )
    record = tmp_path / "record.jsonl"
    record.write_text(record_entry("logs", ExportLogsServiceRequest()) + record_entry("traces", request))

    assert main([str(record), "--width", "80"]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"trace {TRACE_A}  my-function  100.000 ms  5 spans\n")
    assert "| ERROR Runtime.ExitError" in line_of(out, "my-function")
    assert out.endswith("1 trace, 5 spans, 1 error span\n")
    assert all(len(line) <= 80 for line in out.splitlines())


def test_main_reports_an_unreadable_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().err
