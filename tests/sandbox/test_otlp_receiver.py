"""The local OTLP receiver, driven over real HTTP: decoding, recording and injected faults."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from sandbox.otlp_receiver import (
    JSON,
    PROTOBUF,
    FaultMode,
    OTLPReceiver,
    Signal,
    attributes_to_dict,
    decode_recorded,
    load_recorded,
)

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_SPAN_ID = bytes.fromhex("0102030405060708")


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _resource() -> Resource:
    return Resource(attributes=[_kv("service.name", AnyValue(string_value="checkout"))])


def _trace_request(name: str = "invoke") -> ExportTraceServiceRequest:
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_SPAN_ID,
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
        attributes=[
            _kv("faas.coldstart", AnyValue(bool_value=True)),
            _kv("faas.max_memory", AnyValue(int_value=128)),
        ],
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="ext", version="1.0"), spans=[span])],
            )
        ]
    )


def _logs_request() -> ExportLogsServiceRequest:
    record = LogRecord(
        time_unix_nano=1_700_000_000_000_000_000,
        severity_text="INFO",
        body=AnyValue(string_value="hello from the function"),
        attributes=[_kv("aws.request_id", AnyValue(string_value="req-1"))],
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=_resource(),
                scope_logs=[ScopeLogs(scope=InstrumentationScope(name="ext"), log_records=[record])],
            )
        ]
    )


def _metrics_request() -> ExportMetricsServiceRequest:
    metric = Metric(
        name="faas.invocations",
        unit="1",
        sum=Sum(
            aggregation_temporality=AGGREGATION_TEMPORALITY_DELTA,
            is_monotonic=True,
            data_points=[NumberDataPoint(as_int=3, time_unix_nano=1_700_000_000_000_000_000)],
        ),
    )
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=_resource(),
                scope_metrics=[ScopeMetrics(scope=InstrumentationScope(name="ext"), metrics=[metric])],
            )
        ]
    )


def _json_traces() -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: hex ids, an int enum, and a field this receiver doesn't know."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "ext"},
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex(),
                                "spanId": SPAN_ID.hex(),
                                "parentSpanId": PARENT_SPAN_ID.hex(),
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000250000000",
                                "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
                                "links": [{"traceId": TRACE_ID.hex(), "spanId": PARENT_SPAN_ID.hex()}],
                                "someFutureField": {"x": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }


@pytest.fixture
async def receiver() -> AsyncIterator[OTLPReceiver]:
    async with OTLPReceiver(host="127.0.0.1", port=0) as started:
        yield started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as client:
        yield client


async def _post(
    session: aiohttp.ClientSession,
    receiver: OTLPReceiver,
    signal: Signal,
    body: bytes,
    content_type: str = PROTOBUF,
    **headers: str,
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    async with session.post(
        f"{receiver.endpoint}/v1/{signal.value}",
        data=body,
        headers={"Content-Type": content_type, **headers},
    ) as response:
        return response.status, await response.read(), response.headers


# --- accepting and decoding -------------------------------------------------------------------


async def test_endpoint_is_the_bound_port(receiver: OTLPReceiver) -> None:
    assert receiver.port > 0
    assert receiver.endpoint == f"http://127.0.0.1:{receiver.port}"


async def test_protobuf_traces_are_decoded_and_answered_in_protobuf(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    body = _trace_request().SerializeToString()
    status, answer, headers = await _post(session, receiver, Signal.TRACES, body, **{"X-Api-Key": "s3cret"})

    assert status == 200
    assert headers["Content-Type"] == PROTOBUF
    ExportTraceServiceResponse().ParseFromString(answer)  # an empty response still decodes
    [span] = receiver.spans()
    assert span.name == "invoke"
    assert span.span.trace_id == TRACE_ID
    assert span.parent_span_id == PARENT_SPAN_ID.hex()
    assert span.span.kind == Span.SPAN_KIND_SERVER
    assert span.attributes == {"faas.coldstart": True, "faas.max_memory": 128}
    assert span.resource == {"service.name": "checkout"}
    assert (span.scope_name, span.scope_version) == ("ext", "1.0")
    [request] = receiver.requests
    assert request.signal is Signal.TRACES
    assert request.headers["x-api-key"] == "s3cret"
    assert request.content_type == PROTOBUF
    assert request.wire_size_bytes == len(body)
    assert request.received_unix_nano > 1_600_000_000 * 10**9
    assert receiver.trace_requests == [_trace_request()]


async def test_json_traces_with_hex_ids_decode_to_the_same_bytes(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    body = json.dumps(_json_traces()).encode()
    status, answer, headers = await _post(session, receiver, Signal.TRACES, body, JSON)

    assert status == 200
    assert headers["Content-Type"].startswith(JSON)
    assert json.loads(answer) == {}
    [span] = receiver.spans()
    assert span.span.trace_id == TRACE_ID
    assert span.span.span_id == SPAN_ID
    assert span.span.parent_span_id == PARENT_SPAN_ID
    assert span.span.links[0].trace_id == TRACE_ID
    assert span.span.kind == Span.SPAN_KIND_SERVER
    assert span.span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert span.attributes == {"http.status_code": 200}


async def test_json_content_type_with_charset_is_accepted(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    body = json.dumps(_json_traces()).encode()
    status, _, _ = await _post(session, receiver, Signal.TRACES, body, "application/json; charset=utf-8")

    assert status == 200
    assert receiver.requests[0].content_type == "application/json; charset=utf-8"


async def test_gzip_body_is_inflated_and_the_encoding_recorded(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    body = gzip.compress(_trace_request("zipped").SerializeToString())
    status, _, _ = await _post(session, receiver, Signal.TRACES, body, **{"Content-Encoding": "gzip"})

    assert status == 200
    assert [span.name for span in receiver.spans()] == ["zipped"]
    assert receiver.requests[0].headers["Content-Encoding"] == "gzip"
    assert receiver.requests[0].wire_size_bytes == len(body)


async def test_logs_are_decoded(receiver: OTLPReceiver, session: aiohttp.ClientSession) -> None:
    status, _, _ = await _post(session, receiver, Signal.LOGS, _logs_request().SerializeToString())

    assert status == 200
    [record] = receiver.log_records()
    assert record.body == "hello from the function"
    assert record.attributes == {"aws.request_id": "req-1"}
    assert record.trace_id == TRACE_ID.hex()
    assert record.record.severity_text == "INFO"
    assert receiver.spans() == []


async def test_metrics_are_decoded(receiver: OTLPReceiver, session: aiohttp.ClientSession) -> None:
    status, _, _ = await _post(session, receiver, Signal.METRICS, _metrics_request().SerializeToString())

    assert status == 200
    [metric] = receiver.metrics()
    assert (metric.name, metric.kind) == ("faas.invocations", "sum")
    assert metric.metric.sum.data_points[0].as_int == 3
    assert metric.resource == {"service.name": "checkout"}


async def test_wait_for_spans_returns_once_enough_arrived(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    waiting = asyncio.ensure_future(receiver.wait_for_spans(2, timeout_s=2))
    for name in ("first", "second"):
        await _post(session, receiver, Signal.TRACES, _trace_request(name).SerializeToString())

    assert [span.name for span in await waiting] == ["first", "second"]


async def test_wait_for_spans_times_out_with_what_it_got(receiver: OTLPReceiver) -> None:
    with pytest.raises(TimeoutError, match=r"not ready within 0\.05s, got 0 spans"):
        await receiver.wait_for_spans(1, timeout_s=0.05)


# --- refusing bad requests --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "headers"),
    [("text/plain", {}), (PROTOBUF, {"Content-Encoding": "br"})],
)
async def test_unsupported_media_is_415(
    receiver: OTLPReceiver, session: aiohttp.ClientSession, content_type: str, headers: dict[str, str]
) -> None:
    body = _trace_request().SerializeToString()
    status, _, _ = await _post(session, receiver, Signal.TRACES, body, content_type, **headers)

    assert status == 415
    assert receiver.requests == []
    assert receiver.rejected[415] == 1


@pytest.mark.parametrize(
    ("content_type", "body", "headers"),
    [
        (PROTOBUF, b"\x0a\x05ab", {}),  # field 1 claims 5 bytes, has 2
        (JSON, b"{not json", {}),
        (JSON, b"[]", {}),
        (
            JSON,
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
            {},
        ),
        (PROTOBUF, b"not gzip at all", {"Content-Encoding": "gzip"}),
    ],
    ids=["truncated-protobuf", "bad-json", "json-not-object", "bad-hex-id", "bad-gzip"],
)
async def test_undecodable_body_is_400_with_a_reason(
    receiver: OTLPReceiver,
    session: aiohttp.ClientSession,
    content_type: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    status, answer, _ = await _post(session, receiver, Signal.TRACES, body, content_type, **headers)

    assert status == 400
    assert answer.startswith(b"invalid")
    assert receiver.requests == []
    assert receiver.rejected[400] == 1


async def test_wrong_method_is_405(receiver: OTLPReceiver, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{receiver.endpoint}/v1/traces") as response:
        assert response.status == 405


async def test_body_over_the_limit_is_413(session: aiohttp.ClientSession) -> None:
    async with OTLPReceiver(max_body_size=1024) as small:
        status, _, _ = await _post(session, small, Signal.TRACES, b"\x00" * 4096)
        zipped = gzip.compress(json.dumps({"resourceSpans": [], "pad": "x" * 4096}).encode())
        inflated_status, answer, _ = await _post(
            session, small, Signal.TRACES, zipped, JSON, **{"Content-Encoding": "gzip"}
        )

    assert status == 413
    assert (inflated_status, answer) == (400, b"decompressed body exceeds 1024 bytes")


# --- injected faults --------------------------------------------------------------------------


async def test_fail_503_refuses_and_records_nothing(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.mode = FaultMode.FAIL_503
    status, _, _ = await _post(session, receiver, Signal.TRACES, _trace_request().SerializeToString())

    assert status == 503
    assert receiver.requests == []
    assert receiver.refused == {FaultMode.FAIL_503: 1}


async def test_throttle_429_sends_retry_after(receiver: OTLPReceiver, session: aiohttp.ClientSession) -> None:
    receiver.retry_after_s = 7
    receiver.mode = FaultMode.THROTTLE_429
    status, _, headers = await _post(session, receiver, Signal.LOGS, _logs_request().SerializeToString())

    assert status == 429
    assert headers["Retry-After"] == "7"
    assert receiver.log_records() == []
    assert receiver.refused_count == 1


async def test_a_fault_for_the_next_requests_only_then_ok(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.set_mode(FaultMode.FAIL_503, next_requests=2)
    body = _trace_request().SerializeToString()
    statuses = [(await _post(session, receiver, Signal.TRACES, body))[0] for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert receiver.mode is FaultMode.OK
    assert len(receiver.spans()) == 1


async def test_reset_closes_the_connection_without_an_answer(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.mode = FaultMode.RESET
    with pytest.raises(aiohttp.ClientConnectionError):
        await _post(session, receiver, Signal.TRACES, _trace_request().SerializeToString())

    assert receiver.refused == {FaultMode.RESET: 1}
    receiver.mode = FaultMode.OK
    status, _, _ = await _post(session, receiver, Signal.TRACES, _trace_request().SerializeToString())
    assert status == 200


async def test_hang_times_the_client_out_and_does_not_block_close(session: aiohttp.ClientSession) -> None:
    hanging = OTLPReceiver(close_timeout_s=30)  # only releasing held requests can close it in time
    async with asyncio.timeout(3):
        async with hanging:
            hanging.mode = FaultMode.HANG
            with pytest.raises(TimeoutError):
                async with session.post(
                    f"{hanging.endpoint}/v1/traces",
                    data=_trace_request().SerializeToString(),
                    headers={"Content-Type": PROTOBUF},
                    timeout=aiohttp.ClientTimeout(total=0.2),
                ):
                    pass
            assert hanging.held == 1

    assert hanging.held == 0
    assert hanging.requests == []
    assert hanging.refused == {FaultMode.HANG: 1}


async def test_a_held_request_is_served_once_the_mode_changes(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.mode = FaultMode.HANG
    sending = asyncio.ensure_future(
        _post(session, receiver, Signal.TRACES, _trace_request("late").SerializeToString())
    )
    await receiver.wait_for_held(1, timeout_s=2)
    assert not sending.done()

    receiver.mode = FaultMode.OK
    status, _, _ = await sending

    assert status == 200
    assert [span.name for span in receiver.spans()] == ["late"]
    assert receiver.refused_count == 0


async def test_down_refuses_connections_then_reopens_the_same_port(
    receiver: OTLPReceiver, session: aiohttp.ClientSession
) -> None:
    body = _trace_request().SerializeToString()
    endpoint = receiver.endpoint
    assert (await _post(session, receiver, Signal.TRACES, body))[0] == 200  # leaves a kept-alive connection

    await receiver.switch(FaultMode.DOWN)
    assert receiver.mode is FaultMode.DOWN
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", receiver.port)
    with pytest.raises(aiohttp.ClientConnectionError):  # the kept-alive connection went down with the port
        await _post(session, receiver, Signal.TRACES, body)

    await receiver.switch(FaultMode.OK)
    assert receiver.endpoint == endpoint
    assert (await _post(session, receiver, Signal.TRACES, body))[0] == 200
    assert len(receiver.spans()) == 2


async def test_down_cuts_held_requests(receiver: OTLPReceiver, session: aiohttp.ClientSession) -> None:
    receiver.mode = FaultMode.HANG
    sending = asyncio.ensure_future(_post(session, receiver, Signal.TRACES, _trace_request().SerializeToString()))
    await receiver.wait_for_held(1, timeout_s=2)

    await receiver.switch(FaultMode.DOWN)

    with pytest.raises(aiohttp.ClientConnectionError):
        await sending
    assert receiver.held == 0
    assert receiver.requests == []


async def test_down_is_switched_with_await_only(receiver: OTLPReceiver) -> None:
    with pytest.raises(ValueError, match="switch"):
        receiver.mode = FaultMode.DOWN
    with pytest.raises(ValueError, match="no requests to count"):
        await receiver.switch(FaultMode.DOWN, next_requests=1)
    await receiver.switch(FaultMode.DOWN)
    with pytest.raises(ValueError, match="switch"):
        receiver.mode = FaultMode.OK
    await receiver.switch(FaultMode.FAIL_503, next_requests=1)
    assert receiver.mode is FaultMode.FAIL_503


# --- the JSON-lines record --------------------------------------------------------------------


async def test_record_file_round_trip(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    record_path = tmp_path / "received.jsonl"
    async with OTLPReceiver(record_path=record_path) as recording:
        await _post(session, recording, Signal.TRACES, _trace_request().SerializeToString())
        await _post(session, recording, Signal.LOGS, _logs_request().SerializeToString())
        recording.mode = FaultMode.FAIL_503
        await _post(session, recording, Signal.METRICS, _metrics_request().SerializeToString())

    traces, logs = load_recorded(record_path)

    assert (traces["signal"], logs["signal"]) == ("traces", "logs")
    assert traces["content_type"] == PROTOBUF
    assert traces["received_unix_nano"] == recording.requests[0].received_unix_nano
    span = traces["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (
        TRACE_ID.hex(),
        SPAN_ID.hex(),
        PARENT_SPAN_ID.hex(),
    )
    assert span["kind"] == Span.SPAN_KIND_SERVER  # enums as ints, as OTLP/JSON wants
    assert logs["body"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] == TRACE_ID.hex()
    assert decode_recorded(traces) == _trace_request()
    assert decode_recorded(logs) == _logs_request()


# --- attribute values -------------------------------------------------------------------------


def test_attributes_to_dict_covers_every_value_kind() -> None:
    nested = KeyValueList(values=[_kv("inner", AnyValue(double_value=0.5))])
    attributes = [
        _kv("s", AnyValue(string_value="x")),
        _kv("i", AnyValue(int_value=-3)),
        _kv("d", AnyValue(double_value=1.25)),
        _kv("b", AnyValue(bool_value=False)),
        _kv("raw", AnyValue(bytes_value=b"\x00\x01")),
        _kv(
            "arr",
            AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")])),
        ),
        _kv("kv", AnyValue(kvlist_value=nested)),
        _kv("empty", AnyValue()),
    ]

    assert attributes_to_dict(attributes) == {
        "s": "x",
        "i": -3,
        "d": 1.25,
        "b": False,
        "raw": b"\x00\x01",
        "arr": [1, "two"],
        "kv": {"inner": 0.5},
        "empty": None,
    }
