"""Bytes to events: parse_batch on recorded batches and hostile input, parse_next_event, ISO times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extension.errors import ProtocolError
from extension.events import (
    ExtensionLog,
    FunctionLog,
    Invoke,
    PlatformExtension,
    PlatformInitReport,
    PlatformInitRuntimeDone,
    PlatformInitStart,
    PlatformLogsDropped,
    PlatformReport,
    PlatformRuntimeDone,
    PlatformSpan,
    PlatformStart,
    PlatformTelemetrySubscription,
    Shutdown,
    TraceContext,
    Unknown,
)
from extension.wire import parse_batch, parse_next_event

EVENTS = Path(__file__).parent / "events"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(iso: str) -> int:
    """Nanoseconds since the epoch, computed independently of the code under test (µs precision)."""
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(microseconds=1) * 1000


def raw(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def test_cold_start_batch_parses_every_event_type_with_exact_values() -> None:
    """The recorded cold-start batch yields each event with its fields, times in ns."""
    batch = parse_batch(raw("cold_start_1.json"))

    assert batch.malformed == 0
    assert [type(event) for event in batch.events] == [
        PlatformInitStart,
        PlatformTelemetrySubscription,
        PlatformInitRuntimeDone,
        PlatformExtension,
        PlatformInitReport,
        PlatformStart,
        FunctionLog,
        FunctionLog,
        PlatformRuntimeDone,
    ]
    init_start, subscription, init_done, extension, init_report, start, text_log, json_log, done = batch.events
    assert init_start == PlatformInitStart(
        time_unix_nano=ns("2025-01-07T19:49:07.089Z"),
        initialization_type="on-demand",
        phase="init",
        function_name="my-fn",
        function_version="$LATEST",
        instance_id="2025/01/07/my-fn[$LATEST]002cf7829acf404ea7f6995e1910b96b",
        instance_max_memory=134217728,
        runtime_version="python:3.12.v38",
        runtime_version_arn="arn:aws:lambda:us-east-1::runtime:0123abcd",
    )
    assert subscription == PlatformTelemetrySubscription(
        time_unix_nano=ns("2025-01-07T19:49:07.091Z"),
        name="otel-extension",
        state="Subscribed",
        types=("platform", "function"),
    )
    assert init_done == PlatformInitRuntimeDone(
        time_unix_nano=ns("2025-01-07T19:49:07.301Z"), initialization_type="on-demand", phase="init", status="success"
    )
    assert extension == PlatformExtension(
        time_unix_nano=ns("2025-01-07T19:49:07.302Z"),
        name="otel-extension",
        state="Ready",
        events=("INVOKE", "SHUTDOWN"),
    )
    assert init_report == PlatformInitReport(
        time_unix_nano=ns("2025-01-07T19:49:07.303Z"),
        initialization_type="on-demand",
        phase="init",
        status="success",
        duration_ms=213.766,
    )
    assert start == PlatformStart(
        time_unix_nano=ns("2025-01-07T19:49:07.310Z"),
        request_id="6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
        version="$LATEST",
        tracing=TraceContext(
            type="X-Amzn-Trace-Id",
            value="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            span_id="54565fb41ac79632",
        ),
    )
    assert text_log == FunctionLog(time_unix_nano=ns("2025-01-07T19:49:07.312Z"), record="[INFO] handling event")
    assert isinstance(json_log, FunctionLog)
    assert json_log.record == {
        "timestamp": "2025-01-07T19:49:07.318Z",
        "level": "INFO",
        "requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
        "message": "done",
    }
    assert isinstance(done, PlatformRuntimeDone)
    assert (done.status, done.error_type, done.duration_ms, done.produced_bytes) == ("success", None, 11.185, 40)
    assert done.spans == (
        PlatformSpan(name="responseLatency", start_unix_nano=ns("2025-01-07T19:49:07.310Z"), duration_ms=8.215),
        PlatformSpan(name="responseDuration", start_unix_nano=ns("2025-01-07T19:49:07.318Z"), duration_ms=0.056),
        PlatformSpan(name="runtimeOverhead", start_unix_nano=ns("2025-01-07T19:49:07.319Z"), duration_ms=1.686),
    )


def test_report_metrics_are_read_with_optional_ones_absent() -> None:
    """platform.report keeps every metric; initDurationMs only where Lambda sent it."""
    cold = parse_batch(raw("cold_start_2.json")).events[0]
    warm = parse_batch(raw("error_invocation.json")).events[-1]

    assert cold == PlatformReport(
        time_unix_nano=ns("2025-01-07T19:50:12.001Z"),
        request_id="6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
        status="success",
        duration_ms=12.642,
        billed_duration_ms=13,
        memory_size_mb=128,
        max_memory_used_mb=67,
        init_duration_ms=213.766,
        spans=(
            PlatformSpan(name="extensionOverhead", start_unix_nano=ns("2025-01-07T19:49:07.321Z"), duration_ms=1.457),
        ),
    )
    assert isinstance(warm, PlatformReport)
    assert (warm.status, warm.error_type, warm.init_duration_ms, warm.restore_duration_ms) == (
        "error",
        "Runtime.ExitError",
        None,
        None,
    )


def test_report_with_only_duration_is_accepted() -> None:
    """Lambda Managed Instances send durationMs alone; that is a report, not a malformed item."""
    body = [
        {
            "time": "2025-01-07T00:00:00.000Z",
            "type": "platform.report",
            "record": {"requestId": "r", "status": "success", "metrics": {"durationMs": 3.5}},
        }
    ]
    batch = parse_batch(json.dumps(body).encode())

    assert batch.events == [
        PlatformReport(time_unix_nano=ns("2025-01-07T00:00:00Z"), request_id="r", status="success", duration_ms=3.5)
    ]


def test_malformed_items_are_counted_and_never_drop_their_siblings() -> None:
    """Nine broken items cost nine items; the six good ones (one of unknown type) survive."""
    batch = parse_batch(raw("mixed_malformed.json"))

    assert batch.malformed == 9
    assert [type(event) for event in batch.events] == [
        PlatformStart,
        FunctionLog,
        Unknown,
        PlatformLogsDropped,
        ExtensionLog,
        PlatformRuntimeDone,
    ]
    unknown = batch.events[2]
    assert unknown == Unknown(
        time_unix_nano=ns("2025-01-07T20:20:00.007Z"),
        type="platform.restoreStart",
        record={"functionName": "my-fn", "functionVersion": "3"},
    )
    assert batch.events[3] == PlatformLogsDropped(
        time_unix_nano=ns("2025-01-07T20:20:00.008Z"),
        dropped_bytes=12345,
        dropped_records=123,
        reason="Some logs were dropped because the downstream consumer is slower than the logs production rate",
    )


@pytest.mark.parametrize(
    ("body", "malformed"),
    [
        (b"", 1),
        (b"not json", 1),
        (b"\xff\xfe", 1),
        (b'{"time": "2025-01-07T00:00:00Z", "type": "function", "record": "x"}', 1),
        (b"[]", 0),
        (b"[null, true, 1.5, []]", 4),
    ],
)
def test_a_body_that_is_not_a_list_of_objects_is_counted_not_raised(body: bytes, malformed: int) -> None:
    """Garbage in gives an empty batch with a count, never an exception."""
    batch = parse_batch(body)

    assert batch.events == []
    assert batch.malformed == malformed


def test_log_records_strip_exactly_one_trailing_newline() -> None:
    body = [
        {"time": "2025-01-07T00:00:00Z", "type": "function", "record": "two\n\n"},
        {"time": "2025-01-07T00:00:00Z", "type": "extension", "record": "none"},
    ]
    events = parse_batch(json.dumps(body).encode()).events

    assert [event.record for event in events if isinstance(event, FunctionLog | ExtensionLog)] == ["two\n", "none"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-10-12T00:00:15.064Z", ns("2022-10-12T00:00:15.064+00:00")),
        ("2022-10-12T00:00:15Z", ns("2022-10-12T00:00:15+00:00")),
        ("2022-10-12T00:00:15.1Z", ns("2022-10-12T00:00:15.100+00:00")),
        ("2022-10-12T00:00:15.123456789Z", ns("2022-10-12T00:00:15+00:00") + 123_456_789),
        ("2022-10-12T02:00:15.064+02:00", ns("2022-10-12T00:00:15.064+00:00")),
        ("2022-10-11T19:30:15.064-0430", ns("2022-10-12T00:00:15.064+00:00")),
        ("2022-10-12t00:00:15.064z", ns("2022-10-12T00:00:15.064+00:00")),
        ("2022-10-12T00:00:15.064", ns("2022-10-12T00:00:15.064+00:00")),
        ("2022-08-02T12:01:23:521Z", ns("2022-08-02T12:01:23.521+00:00")),
    ],
)
def test_envelope_times_are_read_tolerantly_and_exactly(text: str, expected: int) -> None:
    """'Z' or an offset, 0-9 fractional digits, and the documentation's ':' before the millis."""
    body = [{"time": text, "type": "function", "record": "x"}]

    assert parse_batch(json.dumps(body).encode()).events[0].time_unix_nano == expected


@pytest.mark.parametrize(
    "text", ["", "2022-10-12", "2022-13-12T00:00:15Z", "2022-10-12T25:00:15Z", "2022-10-12T00:00:15.1234567890Z"]
)
def test_impossible_times_are_malformed(text: str) -> None:
    body = [{"time": text, "type": "function", "record": "x"}]

    assert parse_batch(json.dumps(body).encode()).malformed == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
envelope = st.fixed_dictionaries(
    {},
    optional={
        "time": st.sampled_from(["2025-01-07T00:00:00.000Z", "x"]) | json_values,
        "type": st.sampled_from(["platform.start", "platform.report", "platform.runtimeDone", "function"]),
        "record": st.dictionaries(
            st.sampled_from(["requestId", "status", "metrics", "spans", "tracing", "durationMs"]), json_values
        )
        | json_values,
    },
)


@given(st.binary())
def test_parse_batch_never_raises_on_bytes(body: bytes) -> None:
    parse_batch(body)


@given(st.lists(envelope | json_values))
def test_parse_batch_never_raises_on_json_and_accounts_for_every_item(items: list[object]) -> None:
    """Every item is either an event or a malformed count."""
    batch = parse_batch(json.dumps(items).encode())

    assert len(batch.events) + batch.malformed == len(items)


def test_next_invoke_event() -> None:
    assert parse_next_event(raw("next_invoke.json")) == Invoke(
        request_id="dbdb0d38-24e5-45eb-ad4f-3234faaa30d5",
        deadline_ms=1654468766618,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:my-fn",
        tracing=TraceContext(
            type="X-Amzn-Trace-Id",
            value="Root=1-629d3097-1edcadf06b4c097a50faa7a1;Parent=2a68d66d2a726db8;Sampled=0",
        ),
    )


def test_next_invoke_event_without_tracing() -> None:
    """rapid omits tracing when the invoke has no trace id."""
    body = b'{"eventType":"INVOKE","deadlineMs":1,"requestId":"r","invokedFunctionArn":"arn"}'

    assert parse_next_event(body) == Invoke(request_id="r", deadline_ms=1, invoked_function_arn="arn")


@pytest.mark.parametrize("reason", ["spindown", "SPINDOWN", "Timeout"])
def test_next_shutdown_event_lowercases_the_reason(reason: str) -> None:
    body = json.dumps({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": 1654469121614})

    assert parse_next_event(body.encode()) == Shutdown(shutdown_reason=reason.lower(), deadline_ms=1654469121614)


def test_next_shutdown_event_tolerates_the_documented_string_deadline() -> None:
    body = b'{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":"1654469121614"}'

    assert parse_next_event(body) == Shutdown(shutdown_reason="spindown", deadline_ms=1654469121614)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"eventType":"RESTORE","deadlineMs":1}',
        b'{"eventType":"INVOKE","deadlineMs":1,"requestId":"r"}',
        b'{"eventType":"INVOKE","deadlineMs":true,"requestId":"r","invokedFunctionArn":"a"}',
        b'{"eventType":"INVOKE","deadlineMs":1,"requestId":"r","invokedFunctionArn":"a","tracing":"x"}',
        b'{"eventType":"SHUTDOWN","shutdownReason":"spindown"}',
    ],
)
def test_garbled_next_events_raise_protocol_error(body: bytes) -> None:
    """event/next is a promise of the Extensions API: breaking it is an exception, and a ValueError."""
    with pytest.raises(ProtocolError) as caught:
        parse_next_event(body)

    assert isinstance(caught.value, ValueError)
