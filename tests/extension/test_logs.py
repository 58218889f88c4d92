"""LogAssembler on recorded batches: trace context of the SERVER span, severity, skipped platform lines, drops."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from support import SequentialIds, events, ns

from extension import log
from extension.convert.logs import LogAssembler
from extension.convert.resource import lambda_resource
from extension.convert.spans import REMEMBERED_IDS, SpanAssembler
from extension.events import ExtensionLog, FunctionLog, PlatformRuntimeDone, PlatformStart, TelemetryEvent, TraceContext
from extension.export import protobuf
from extension.export.size import estimate_log_bytes
from extension.telemetry import LogData, SpanData

R = "8f5c1d2e-3a4b-4c5d-9e6f-7a8b9c0d1e2f"  # logs_json.json, X-Ray traced
R_TRACE, R_SPAN = 0x677E3F802F1B5C3D4E5F60718293A4B5, 0x3C4D5E6F708192A3
T1 = "a1b2c3d4-0000-4000-8000-000000000001"  # logs_text.json, no tracing header: random ids
T2 = "a1b2c3d4-0000-4000-8000-000000000002"




def assemblers() -> tuple[SpanAssembler, LogAssembler]:
    resource = lambda_resource(service_name="my-fn", function_name="my-fn", region="us-east-1", memory_mb=128)
    spans = SpanAssembler(resource=resource, function_name="my-fn", ids=SequentialIds())
    return spans, LogAssembler(resource=resource, ids_of=spans.ids_of)


def feed(batch: list[TelemetryEvent]) -> tuple[list[SpanData], list[LogData], LogAssembler]:
    """As the pipeline does: the span assembler first, so the ids of invocations starting in the batch are known."""
    spans, logs = assemblers()
    return spans.feed(batch), logs.feed(batch), logs


def servers(spans: Sequence[SpanData]) -> dict[str, tuple[int, int]]:
    """Request id -> (trace id, span id) of each SERVER span."""
    out = {}
    for span in spans:
        if span.kind == "server":
            out[str(span.attributes["faas.invocation_id"])] = (span.trace_id, span.span_id)
    return out


def by_body(records: Sequence[LogData]) -> dict[object, LogData]:
    named = {record.body: record for record in records}
    assert len(named) == len(records), "bodies are unique in the recorded batches"
    return named


def trace(record: LogData) -> tuple[int, int] | None:
    assert (record.trace_id is None) == (record.span_id is None)
    return None if record.trace_id is None or record.span_id is None else (record.trace_id, record.span_id)


def attributes(record: LogData) -> dict[str, object]:
    return dict(record.attributes)


def test_json_lines_carry_the_ids_of_their_invocations_server_span() -> None:
    spans, records, _ = feed(events("logs_json.json"))

    assert servers(spans) == {R: (R_TRACE, R_SPAN)}
    named = [record for record in records if attributes(record).get("faas.invocation_id") == R]
    assert len(named) == 7
    assert all(trace(record) == (R_TRACE, R_SPAN) for record in named)
    assert all(record.sampled for record in named)


def test_json_fields_make_body_severity_time_and_attributes() -> None:
    records = by_body(feed(events("logs_json.json"))[1])

    debug = records["event received"]
    assert (debug.severity_number, debug.severity_text) == (5, "DEBUG")
    assert debug.time_unix_nano == ns("2025-01-08T09:00:00.211Z")  # the record's own time
    assert debug.observed_unix_nano == ns("2025-01-08T09:00:00.212Z")  # the event's
    assert attributes(records["event received"]) == {
        "logger": "app",
        "event.path": "/orders",
        "event.size": 3,
        "event.tags": '["a","b"]',  # one level flattened, deeper values as JSON text, nulls left out
        "faas.invocation_id": R,
        "aws.lambda.log.source": "function",
    }
    warning = attributes(records["slow downstream"])
    assert (warning["latency_ms"], warning["retry"]) == (812.5, True)
    assert warning["order_id"] == "18446744073709551615"  # beyond int64: OTLP could not hold it as a number


def test_json_exception_fields_use_the_semantic_conventions_and_a_bad_timestamp_falls_back() -> None:
    failed = by_body(feed(events("logs_json.json"))[1])["order failed"]

    assert failed.time_unix_nano == ns("2025-01-08T09:00:00.214Z")
    assert {key: value for key, value in attributes(failed).items() if key.startswith("exception.")} == {
        "exception.type": "KeyError",
        "exception.message": "'id'",
        "exception.stacktrace": '  File "/var/task/app.py", line 9, in handler\n    return event["id"]\n'
                                "KeyError: 'id'",
    }
    assert attributes(failed)["location"] == "/var/task/app.py:handler:9"


def test_json_message_that_is_not_text_and_records_without_message() -> None:
    records = feed(events("logs_json.json"))[1]
    bodies = [record.body for record in records]

    assert '{"order":42}' in bodies
    checkout = by_body(records)['{"user":"u-1","action":"checkout"}']  # no message: the whole record
    assert attributes(checkout)["user"] == "u-1"
    assert trace(checkout) == (R_TRACE, R_SPAN)  # no requestId: the running invocation's
    assert checkout.severity_number == 0


def test_init_lines_and_unnamed_lines_after_runtime_done_have_no_trace_context() -> None:
    records = by_body(feed(events("logs_json.json"))[1])

    for body in ("loading model", "background tick"):
        assert trace(records[body]) is None
        assert "faas.invocation_id" not in attributes(records[body])
    assert trace(records["cache flushed"]) == (R_TRACE, R_SPAN)  # after runtimeDone, but it names its invocation


def test_platform_lines_are_skipped_and_counted() -> None:
    _, json_records, json_logs = feed(events("logs_json.json"))
    _, text_records, text_logs = feed(events("logs_text.json"))

    assert (json_logs.skipped, json_logs.converted) == (3, len(json_records)) == (3, 9)
    assert (text_logs.skipped, text_logs.converted) == (4, len(text_records)) == (4, 11)
    for record in text_records:
        body = str(record.body)
        assert not body.startswith(("START ", "END ", "REPORT ", "INIT_START", "INIT_REPORT")), body


def test_text_lines_in_the_python_runtimes_format() -> None:
    spans, records, _ = feed(events("logs_text.json"))
    ids = servers(spans)
    named = by_body(records)

    handling = named["handling order 1"]
    assert trace(handling) == ids[T1]
    assert handling.severity_number == 9
    assert handling.severity_text == "INFO"
    assert handling.time_unix_nano == ns("2025-01-08T10:00:00.201Z")
    failed = named["failed:\nTraceback (most recent call last):\n  File \"/var/task/app.py\", line 9, in handler\n"
                   "KeyError: 'id'"]
    assert failed.severity_text == "ERROR" and trace(failed) == ids[T1]
    bad_time = named["bad timestamp"]
    assert bad_time.time_unix_nano == bad_time.observed_unix_nano == ns("2025-01-08T10:00:01.003Z")


def test_text_lines_without_a_request_id_belong_to_the_running_invocation_in_batch_order() -> None:
    spans, records, _ = feed(events("logs_text.json"))
    ids = servers(spans)
    named = by_body(records)

    assert ids[T1] != ids[T2]
    assert trace(named["plain print from the handler"]) == ids[T1]
    assert named["plain print from the handler"].severity_number == 0
    assert trace(named["retrying"]) == ids[T2]
    assert trace(named["late line from the first invocation's thread"]) == ids[T1]  # it names T1
    extension_line = named["[other-ext] flushed"]
    assert trace(extension_line) == ids[T2]
    assert attributes(extension_line) == {"aws.lambda.log.source": "extension", "faas.invocation_id": T2}
    for body in ("loading model", "print during init", "[other-ext] registered", "written after runtimeDone"):
        assert trace(named[body]) is None and "faas.invocation_id" not in attributes(named[body]), body


def test_logs_dropped_totals_are_counted() -> None:
    logs = feed(events("logs_text.json"))[2]

    assert (logs.dropped_records, logs.dropped_bytes) == (13, 4196)


def test_records_carry_the_resource_with_the_instance() -> None:
    _, records, logs = feed(events("logs_text.json"))

    instance = "2025/01/08/my-fn[$LATEST]11223344556677889900aabbccddeeff"
    assert logs.resource.attributes["faas.instance"] == instance
    assert all(record.resource.attributes["faas.instance"] == instance for record in records)


@pytest.mark.parametrize(
    ("level", "number"),
    [("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("WARNING", 13), ("ERROR", 17), ("FATAL", 21),
     ("CRITICAL", 21), ("warn", 13), ("NOTICE", 0)],
)
def test_severity_from_json_and_text_levels(level: str, number: int) -> None:
    _, logs = assemblers()
    json_line = FunctionLog(time_unix_nano=1, record={"level": level, "message": "m"})
    text_line = FunctionLog(time_unix_nano=1, record=f"[{level}]\t2025-01-08T10:00:00.000Z\t{T1}\tm")

    for record in logs.feed([json_line, text_line]):
        assert (record.severity_number, record.severity_text) == (number, level)


def test_unsampled_invocations_keep_their_trace_id_unsampled() -> None:
    start = PlatformStart(time_unix_nano=1, request_id=T1, tracing=TraceContext(
        type="X-Amzn-Trace-Id", value="Root=1-629d3097-1edcadf06b4c097a50faa7a1;Parent=2a68d66d2a726db8;Sampled=0"))
    spans, logs = assemblers()
    batch: list[TelemetryEvent] = [start, FunctionLog(time_unix_nano=2, record="hello")]
    spans.feed(batch)

    [record] = logs.feed(batch)

    assert record.trace_id == 0x629D30971EDCADF06B4C097A50FAA7A1
    assert not record.sampled


def test_state_is_bounded_old_invocations_keep_only_their_request_id() -> None:
    spans, logs = assemblers()
    request_ids = [f"req-{i}" for i in range(REMEMBERED_IDS + 50)]
    batch: list[TelemetryEvent] = []
    for i, request_id in enumerate(request_ids):
        batch += [PlatformStart(time_unix_nano=i, request_id=request_id),
                  PlatformRuntimeDone(time_unix_nano=i, request_id=request_id, status="success", duration_ms=1.0)]
    spans.feed(batch)
    late = [FunctionLog(time_unix_nano=0, record={"requestId": request_id, "message": "late"})
            for request_id in (request_ids[0], request_ids[-1])]

    first, last = logs.feed(late)

    assert spans.ids_of(request_ids[0]) is None and spans.ids_of(request_ids[-REMEMBERED_IDS]) is not None
    assert trace(first) is None and attributes(first)["faas.invocation_id"] == request_ids[0]
    assert trace(last) is not None and attributes(last)["faas.invocation_id"] == request_ids[-1]


def test_records_encode_to_otlp_and_back() -> None:
    _, records, _ = feed(events("logs_json.json"))

    request = ExportLogsServiceRequest.FromString(protobuf.encode_logs(records))

    [resource_logs] = request.resource_logs
    [scope_logs] = resource_logs.scope_logs
    assert scope_logs.scope.name == "lambda-otel-extension"
    assert len(scope_logs.log_records) == len(records)
    warning = next(log for log in scope_logs.log_records if log.body.string_value == "slow downstream")
    assert (warning.trace_id, warning.span_id) == (R_TRACE.to_bytes(16, "big"), R_SPAN.to_bytes(8, "big"))
    assert (warning.severity_number, warning.severity_text, warning.flags) == (13, "WARNING", 1)
    assert warning.time_unix_nano == ns("2025-01-08T09:00:00.213Z")
    decoded = {kv.key: kv.value for kv in warning.attributes}
    assert decoded["order_id"].string_value == "18446744073709551615"
    assert decoded["latency_ms"].double_value == 812.5
    init = next(log for log in scope_logs.log_records if log.body.string_value == "loading model")
    assert (init.trace_id, init.span_id, init.flags) == (b"", b"", 0)


def test_estimated_size_is_within_a_factor_of_two_of_the_encoded_size() -> None:
    for name in ("logs_json.json", "logs_text.json"):
        for record in feed(events(name))[1]:
            encoded = len(protobuf.log_bytes(record))
            assert 0.5 * encoded <= estimate_log_bytes(record) <= 2 * encoded, (record.body, encoded)


def test_ten_thousand_lines_in_one_invocation() -> None:
    spans, logs = assemblers()
    start = PlatformStart(time_unix_nano=0, request_id=T1)
    lines = [FunctionLog(time_unix_nano=i, record=f"[INFO]\t2025-01-08T10:00:00.000Z\t{T1}\tline {i}")
             for i in range(10_000)]
    batch: list[TelemetryEvent] = [start, *lines, PlatformRuntimeDone(time_unix_nano=1, request_id=T1,
                                                                      status="success", duration_ms=1.0)]
    server = servers(spans.feed(batch))[T1]

    records = logs.feed(batch)

    assert logs.converted == len(records) == 10_000
    assert {trace(record) for record in records} == {server}
    request = ExportLogsServiceRequest.FromString(protobuf.encode_logs(records))
    assert len(request.resource_logs[0].scope_logs[0].log_records) == 10_000


def test_this_extensions_own_lines_are_not_sent_back_to_it() -> None:
    spans = SpanAssembler(resource=lambda_resource(service_name="fn"), function_name="fn", ids=SequentialIds())
    logs = LogAssembler(resource=lambda_resource(service_name="fn"), ids_of=spans.ids_of, own_name="otel-extension")
    ours_text = log.render("info", "flushed", {"spans": 6}, 0, "otel-extension").decode().rstrip("\n")
    records = logs.feed([
        ExtensionLog(time_unix_nano=1, record=ours_text),  # Text log format: the line as extension.log printed it
        ExtensionLog(time_unix_nano=2, record={"extension": "otel-extension", "event": "flushed"}),  # JSON format
        ExtensionLog(time_unix_nano=3, record='{"extension": "another-one", "event": "ready"}'),
        ExtensionLog(time_unix_nano=4, record="plain text from another extension"),
    ])
    assert [r.body for r in records] == ['{"extension": "another-one", "event": "ready"}',
                                                  "plain text from another extension"]
    assert logs.skipped == 2
