"""SpanAssembler on recorded batches: invocation, phase, report and init spans, in any event order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import pytest
from support import EVENTS, SequentialIds, events, ns

from extension.convert.resource import lambda_resource
from extension.convert.spans import REMEMBERED_IDS, AssemblerStats, SpanAssembler
from extension.events import Invoke, PlatformReport, PlatformStart, TelemetryEvent, TraceContext
from extension.telemetry import SpanData
from extension.wire import parse_batch

R1 = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"
R2 = "4b142fc3-17b8-4cdb-a46b-a8dbe7918715"
STREAM = "2025/01/07/my-fn[$LATEST]002cf7829acf404ea7f6995e1910b96b"
R1_TRACE = 0x5759E988BD862E3FE1BE46A994272793




def assembler(**kwargs: int) -> SpanAssembler:
    resource = lambda_resource(service_name="my-fn", function_name="my-fn", region="us-east-1", memory_mb=128)
    return SpanAssembler(resource=resource, function_name="my-fn", ids=SequentialIds(), **kwargs)


def by_name(spans: Sequence[SpanData]) -> dict[str, SpanData]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), "span names are unique within one invocation"
    return named


def ids(span: SpanData) -> tuple[int, int]:
    return span.trace_id, span.span_id


def parent(span: SpanData) -> tuple[int, int, bool] | None:
    if span.parent_span_id is None:
        return None
    return span.trace_id, span.parent_span_id, span.parent_is_remote


def test_cold_start_invocation_span_leaves_at_runtime_done() -> None:
    """The SERVER span: X-Ray trace id, platform span id, remote parent, exact times, attributes."""
    assembly = assembler()
    assembly.note_invoke(
        Invoke(
            request_id=R1, deadline_ms=0, invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:my-fn"
        )
    )

    spans = by_name(assembly.feed(events("cold_start_1.json")))

    assert sorted(spans) == ["init", "my-fn", "responseDuration", "responseLatency", "runtimeOverhead"]
    invocation = spans["my-fn"]
    assert invocation.kind == "server"
    assert ids(invocation) == (R1_TRACE, 0x54565FB41AC79632)
    assert parent(invocation) == (R1_TRACE, 0x53995C3F42CD8AD8, True)
    assert invocation.start_unix_nano == ns("2025-01-07T19:49:07.310Z")
    assert invocation.end_unix_nano == ns("2025-01-07T19:49:07.310Z") + 11_185_000
    assert invocation.error is None
    assert dict(invocation.attributes or {}) == {
        "faas.invocation_id": R1,
        "faas.coldstart": True,
        "aws.lambda.invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:my-fn",
        "aws.lambda.status": "success",
        "aws.lambda.duration_ms": 11.185,
        "aws.lambda.produced_bytes": 40,
    }
    assert invocation.resource.attributes["faas.instance"] == STREAM
    assert invocation.resource.attributes["faas.max_memory"] == 134_217_728
    assert assembly.stats == AssemblerStats(pending=1)  # R1 waits for its report


def test_runtime_done_phases_are_children_with_exact_times() -> None:
    spans = by_name(assembler().feed(events("cold_start_1.json")))

    expected = {
        "responseLatency": ("2025-01-07T19:49:07.310Z", 8_215_000),
        "responseDuration": ("2025-01-07T19:49:07.318Z", 56_000),
        "runtimeOverhead": ("2025-01-07T19:49:07.319Z", 1_686_000),
    }
    for name, (start, duration_ns) in expected.items():
        phase = spans[name]
        assert phase.kind == "internal"
        assert parent(phase) == (R1_TRACE, 0x54565FB41AC79632, False)
        assert ids(phase)[0] == R1_TRACE
        assert (phase.start_unix_nano, phase.end_unix_nano) == (ns(start), ns(start) + duration_ns)


def test_init_span_joins_the_first_invocations_trace() -> None:
    """Init ran before the trace id was known: it is held, then parented to the invocation span."""
    init = by_name(assembler().feed(events("cold_start_1.json")))["init"]

    assert ids(init)[0] == R1_TRACE
    assert parent(init) == (R1_TRACE, 0x54565FB41AC79632, False)
    assert init.start_unix_nano == ns("2025-01-07T19:49:07.089Z")
    assert init.end_unix_nano == ns("2025-01-07T19:49:07.089Z") + 213_766_000
    assert init.error is None
    assert dict(init.attributes or {}) == {
        "faas.coldstart": True,
        "aws.lambda.init.type": "on-demand",
        "aws.lambda.init.phase": "init",
        "aws.lambda.init.status": "success",
        "aws.lambda.init.duration_ms": 213.766,
        "aws.lambda.runtime_version": "python:3.12.v38",
    }


def test_late_report_becomes_a_child_of_its_invocation_and_the_next_one_is_warm() -> None:
    """platform.report arrives with the next invocation; it still lands in the right trace."""
    assembly = assembler()
    assembly.feed(events("cold_start_1.json"))

    spans = assembly.feed(events("cold_start_2.json"))

    report, overhead = spans[0], spans[1]
    assert (report.name, overhead.name) == ("report", "extensionOverhead")
    assert ids(report)[0] == R1_TRACE
    assert parent(report) == (R1_TRACE, 0x54565FB41AC79632, False)
    assert parent(overhead) == (R1_TRACE, ids(report)[1], False)
    assert report.start_unix_nano == ns("2025-01-07T19:49:07.310Z")
    assert report.end_unix_nano == ns("2025-01-07T19:49:07.310Z") + 12_642_000
    assert (overhead.start_unix_nano, overhead.end_unix_nano) == (
        ns("2025-01-07T19:49:07.321Z"),
        ns("2025-01-07T19:49:07.321Z") + 1_457_000,
    )
    assert dict(report.attributes or {}) == {
        "faas.invocation_id": R1,
        "aws.lambda.status": "success",
        "aws.lambda.duration_ms": 12.642,
        "aws.lambda.billed_duration_ms": 13,
        "aws.lambda.memory_size_mb": 128,
        "aws.lambda.max_memory_used_mb": 67,
        "aws.lambda.init_duration_ms": 213.766,
    }
    warm = by_name(spans[2:])["my-fn"]
    assert ids(warm)[0] == 0x677D8A541EDCADF06B4C097A50FAA7A1
    assert parent(warm) == (0x677D8A541EDCADF06B4C097A50FAA7A1, 0x2A68D66D2A726DB8, True)
    assert warm.attributes is not None
    assert warm.attributes["faas.coldstart"] is False
    assert assembly.stats.pending == 1  # R1 is done; R2 waits for its report


def test_error_invocation_without_tracing_gets_a_new_trace_and_error_status() -> None:
    assembly = assembler()

    spans = assembly.feed(events("error_invocation.json"))

    invocation, report = spans
    assert ids(invocation) == ((0xAAAA << 112) + 1, (0xB000 << 48) + 1)
    assert invocation.parent_span_id is None
    assert invocation.error is not None
    assert invocation.error == "Runtime.ExitError"
    assert invocation.attributes is not None
    assert invocation.attributes["aws.lambda.error_type"] == "Runtime.ExitError"
    assert invocation.attributes["aws.lambda.produced_bytes"] == 0
    assert invocation.end_unix_nano == ns("2025-01-07T20:01:00.000Z") + 95_250_000
    assert report.error is not None
    assert parent(report) == (ids(invocation)[0], ids(invocation)[1], False)
    assert assembly.stats == AssemblerStats()


def test_timeout_is_an_error_described_by_its_status() -> None:
    invocation = by_name(assembler().feed(events("timeout.json")))["my-fn"]

    assert invocation.error is not None
    assert invocation.error == "timeout"
    assert invocation.end_unix_nano == ns("2025-01-07T20:05:00.000Z") + 3_000_000_000
    assert ids(invocation) == (0x677D8C1C9E2A4F7B3C1D5E6F7A8B9C0D, 0x0AF7651916CD43DD)


def test_sampled_zero_drops_the_invocation_and_all_its_children() -> None:
    assembly = assembler()

    assert assembly.feed(events("unsampled.json")) == []
    assert assembly.stats == AssemblerStats(unsampled_dropped=6)  # invocation + 3 phases + report + overhead


def test_an_unsampled_first_invocation_drops_the_init_span_too() -> None:
    unsampled = TraceContext(
        type="X-Amzn-Trace-Id", value="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
    )
    cold = [
        replace(event, tracing=unsampled) if isinstance(event, PlatformStart) else event
        for event in events("cold_start_1.json")
    ]
    assembly = assembler()

    assert assembly.feed(cold) == []
    assert assembly.stats.unsampled_dropped == 5  # init + invocation + 3 phases
    assert assembly.stats.pending == 1  # its report will be dropped too, when it comes


def shape(spans: Sequence[SpanData]) -> set[tuple[object, ...]]:
    """What a trace looks like without the generated span ids: names, times, links by name."""
    names = {ids(span)[1]: span.name for span in spans}
    return {
        (
            span.name,
            ids(span)[0],
            span.start_unix_nano,
            span.end_unix_nano,
            span.parent_span_id and (span.parent_is_remote or names[span.parent_span_id]),
            span.error,
            tuple(sorted((span.attributes or {}).items())),
        )
        for span in spans
    }


def test_any_order_of_events_gives_the_same_spans() -> None:
    """Report before runtimeDone, runtimeDone before start, init after start: one event per batch."""
    recorded = [e for e in events("cold_start_1.json") + events("cold_start_2.json") if _about_r1(e)]
    expected = shape(assembler().feed(recorded))

    for order in itertools.permutations(recorded):
        assembly = assembler()
        spans = [span for event in order for span in assembly.feed([event])]
        assert shape(spans) == expected, [type(event).__name__ for event in order]
        assert assembly.stats == AssemblerStats()


def _about_r1(event: TelemetryEvent) -> bool:
    """The init events and R1's start, runtimeDone and report: 6! orders."""
    request_id = getattr(event, "request_id", None)
    return request_id == R1 or type(event).__name__.startswith("PlatformInit")


def test_report_before_runtime_done_in_the_same_batch() -> None:
    start, _log, done, report = events("error_invocation.json")

    spans = assembler().feed([start, report, done])

    assert [span.name for span in spans] == ["my-fn", "report"]


def test_malformed_and_unknown_are_counted_and_good_events_still_make_spans() -> None:
    assembly = assembler()

    spans = assembly.feed_batch(parse_batch((EVENTS / "mixed_malformed.json").read_bytes()))

    assert [span.name for span in spans] == ["my-fn"]
    assert spans[0].end_unix_nano == ns("2025-01-07T20:20:00.000Z") + 4_250_000
    assert assembly.stats == AssemblerStats(malformed=9, unknown=1, pending=1)


def test_pending_invocations_are_bounded_evicting_the_oldest() -> None:
    assembly = assembler(max_pending=2)
    starts = [PlatformStart(time_unix_nano=index, request_id=f"r{index}") for index in range(3)]

    assembly.feed(starts)

    assert assembly.stats == AssemblerStats(evicted=1, pending=2)


def test_ids_of_gives_the_server_spans_ids_after_it_left_for_the_last_invocations() -> None:
    """Log lines ask for them (LogAssembler's ids_of); the report has come, so nothing is pending any more."""
    assembly = assembler()
    spans = assembly.feed(events("error_invocation.json"))
    request_id = str((spans[0].attributes or {})["faas.invocation_id"])

    found = assembly.ids_of(request_id)

    assert found is not None and (found.trace_id, found.span_id, found.sampled) == (*ids(spans[0]), True)
    assert assembly.stats.pending == 0 and assembly.ids_of("never-started") is None
    assembly.feed([PlatformStart(time_unix_nano=index, request_id=f"r{index}") for index in range(REMEMBERED_IDS)])
    assert assembly.ids_of(request_id) is None and assembly.ids_of("r0") is not None


def test_drain_orphans_sends_an_unclaimed_init_as_its_own_trace() -> None:
    """SHUTDOWN before any invocation: the init span still gets out, as a root."""
    assembly = assembler()
    init_only = [event for event in events("cold_start_1.json") if type(event).__name__.startswith("PlatformInit")]

    assert assembly.feed(init_only) == []
    (init,) = assembly.drain_orphans()

    assert init.name == "init"
    assert init.parent_span_id is None
    assert ids(init) == ((0xAAAA << 112) + 1, (0xB000 << 48) + 1)
    assert assembly.drain_orphans() == []


def test_drain_orphans_ends_an_invocation_without_runtime_done_at_its_report() -> None:
    """Lambda Managed Instances send no runtimeDone: start + report.durationMs is the end."""
    assembly = assembler()
    start = PlatformStart(time_unix_nano=1_000_000_000, request_id="lmi")
    report = PlatformReport(time_unix_nano=2_000_000_000, request_id="lmi", status="success", duration_ms=7.5)
    stuck = PlatformStart(time_unix_nano=3_000_000_000, request_id="never-finished")

    assert assembly.feed([start, report, stuck]) == []
    invocation, report_span = assembly.drain_orphans()

    assert (invocation.name, invocation.start_unix_nano, invocation.end_unix_nano) == (
        "my-fn", 1_000_000_000, 1_007_500_000)
    assert report_span.name == "report"
    assert assembly.stats == AssemblerStats(incomplete=1)


@pytest.mark.parametrize("span_id", ["xyz", "0000000000000000", "54565fb41ac7963"])
def test_an_invalid_platform_span_id_is_replaced_by_a_generated_one(span_id: str) -> None:
    raw = (EVENTS / "timeout.json").read_text().replace("0af7651916cd43dd", span_id)
    spans = assembler().feed(parse_batch(raw.encode()).events)

    assert ids(by_name(spans)["my-fn"])[1] == (0xB000 << 48) + 1
