"""OTLP export: the pure encoder and response reader, and the exporter against a real OTLP receiver."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceMessage
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from extension import __version__
from extension.config import Compression, OTLPProtocol, SignalExport
from extension.errors import TransportError
from extension.export.otlp import TRACES, ExportResult, OTLPExporter, encode_request, read_response
from extension.export.transport import HTTPTransport, Response
from extension.http.client import HTTPClient
from extension.telemetry import Resource, SpanData
from sandbox.otlp_receiver import FaultMode, OTLPReceiver, Signal, export_request_from_json

TRACE_ID = 0x5759E988BD862E3FE1BE46A994272793
REMOTE_PARENT_ID = 0x53995C3F42CD8AD8
ROOT_ID = 0x1111111111111111
CHILD_ID = 0x2222222222222222
START = 1_736_208_000_000_000_000
API_KEY = "k3y-s3cr3t-value-0123456789"
PROTOBUF = "application/x-protobuf"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def lambda_spans() -> list[SpanData]:
    """An invocation span under a remote X-Ray parent, and a failed child phase."""
    resource = Resource({"service.name": "my-fn", "faas.name": "my-fn", "cloud.region": "us-east-1"})
    root = SpanData(
        name="my-fn",
        kind="server",
        trace_id=TRACE_ID,
        span_id=ROOT_ID,
        parent_span_id=REMOTE_PARENT_ID,
        parent_is_remote=True,
        start_unix_nano=START,
        end_unix_nano=START + 120_000_000,
        attributes={"faas.invocation_id": "6d68ca91", "faas.coldstart": True, "faas.max_memory": 134217728},
        error=None,
        resource=resource,
    )
    child = SpanData(
        name="responseLatency",
        kind="internal",
        trace_id=TRACE_ID,
        span_id=CHILD_ID,
        parent_span_id=ROOT_ID,
        parent_is_remote=False,
        start_unix_nano=START + 1_000_000,
        end_unix_nano=START + 90_000_000,
        attributes={"lambda.phase.status": "error", "lambda.phase.duration_ms": 89.0},
        error="Runtime.ExitError",
        resource=resource,
    )
    return [root, child]


def expected_request() -> ExportTraceServiceRequest:
    """lambda_spans() as opentelemetry-proto's own messages say it: what the encoders must write."""
    root = Span(trace_id=TRACE_ID.to_bytes(16, "big"), span_id=ROOT_ID.to_bytes(8, "big"),
                parent_span_id=REMOTE_PARENT_ID.to_bytes(8, "big"), name="my-fn", kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=START, end_time_unix_nano=START + 120_000_000,
                attributes=[KeyValue(key="faas.invocation_id", value=AnyValue(string_value="6d68ca91")),
                            KeyValue(key="faas.coldstart", value=AnyValue(bool_value=True)),
                            KeyValue(key="faas.max_memory", value=AnyValue(int_value=134217728))],
                status=Status(), flags=0x300)
    child = Span(trace_id=TRACE_ID.to_bytes(16, "big"), span_id=CHILD_ID.to_bytes(8, "big"),
                 parent_span_id=ROOT_ID.to_bytes(8, "big"), name="responseLatency", kind=Span.SPAN_KIND_INTERNAL,
                 start_time_unix_nano=START + 1_000_000, end_time_unix_nano=START + 90_000_000,
                 attributes=[KeyValue(key="lambda.phase.status", value=AnyValue(string_value="error")),
                             KeyValue(key="lambda.phase.duration_ms", value=AnyValue(double_value=89.0))],
                 status=Status(code=Status.STATUS_CODE_ERROR, message="Runtime.ExitError"), flags=0x100)
    resource = ResourceMessage(attributes=[
        KeyValue(key=key, value=AnyValue(string_value=value))
        for key, value in (("service.name", "my-fn"), ("faas.name", "my-fn"), ("cloud.region", "us-east-1"))])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(
        scope=InstrumentationScope(name="lambda-otel-extension", version=__version__), spans=[root, child])])])


def traces_signal(base: str, **overrides: Any) -> SignalExport:
    fields: dict[str, Any] = {"endpoint": f"{base}/v1/traces", "headers": {"x-api-key": API_KEY}}
    fields.update(overrides)
    return SignalExport(**fields)


def protobuf_answer(answer: ExportTraceServiceResponse) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer.SerializeToString(), content_type=PROTOBUF)

    return handle


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A one-route OTLP endpoint of our own making; yields its base URL."""
    app = web.Application()
    app.router.add_post("/v1/traces", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{site.port}"
    finally:
        await runner.cleanup()


@dataclass(slots=True)
class FakeTransport:
    """Answers every post with `response` and records what it was asked to send."""

    response: Response = field(default_factory=lambda: Response(status=200, headers={}, body=b""))
    posts: list[tuple[str, bytes, dict[str, str], float]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response:
        self.posts.append((url, body, dict(headers), timeout_s))
        return self.response


@pytest.fixture
async def receiver() -> AsyncIterator[OTLPReceiver]:
    async with OTLPReceiver(port=0) as otlp:
        yield otlp


@pytest.fixture
async def session() -> AsyncIterator[HTTPClient]:
    async with HTTPClient() as client:
        yield client


def exporter_for(session: HTTPClient, signal: SignalExport) -> OTLPExporter[SpanData]:
    return OTLPExporter(HTTPTransport(session), signal, TRACES)


# --- encoding, no event loop ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_protobuf_request_is_the_encoded_spans(compression: Compression) -> None:
    """The protobuf body is the request opentelemetry-proto would serialize, byte for byte; gzip only when asked."""
    body, headers = encode_request(lambda_spans(), "http/protobuf", compression, TRACES)

    if compression == "gzip":
        assert headers == {"content-type": PROTOBUF, "content-encoding": "gzip"}
        body = gzip.decompress(body)
    else:
        assert headers == {"content-type": PROTOBUF}
    assert ExportTraceServiceRequest.FromString(body) == expected_request()
    assert body == expected_request().SerializeToString()


def test_json_request_writes_ids_as_lowercase_hex() -> None:
    """OTLP/JSON: camelCase keys, hex ids (not base64), integer enums; it parses back to the same request."""
    body, headers = encode_request(lambda_spans(), "http/json", "none", TRACES)

    assert headers == {"content-type": "application/json"}
    document = json.loads(body)
    root, child = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert root["traceId"] == child["traceId"] == "5759e988bd862e3fe1be46a994272793"
    assert (root["spanId"], root["parentSpanId"]) == ("1111111111111111", "53995c3f42cd8ad8")
    assert (child["spanId"], child["parentSpanId"]) == ("2222222222222222", "1111111111111111")
    assert (root["kind"], child["kind"], child["status"]["code"]) == (2, 1, 2)
    assert export_request_from_json(Signal.TRACES, document) == expected_request()


def test_gzip_output_depends_on_the_spans_alone() -> None:
    spans = lambda_spans()
    assert encode_request(spans, "http/json", "gzip", TRACES) == encode_request(spans, "http/json", "gzip", TRACES)


# --- reading answers, no event loop -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (429, False, True),
        (502, False, True),
        (503, False, True),
        (504, False, True),
        (400, False, False),
        (401, False, False),
        (413, False, False),
        (500, False, False),
    ],
)
def test_status_decides_ok_and_retryable(status: int, ok: bool, retryable: bool) -> None:
    result = read_response(Response(status=status, headers={}, body=b""), items=3, sent_bytes=10, duration_s=0.5)

    assert (result.ok, result.retryable, result.status, result.items, result.sent_bytes) == (
        ok,
        retryable,
        status,
        3,
        10,
    )
    assert result.error == (None if ok else f"HTTP {status}")


def test_error_text_quotes_the_endpoint_but_never_a_header_value() -> None:
    answer = Response(
        status=401,
        headers={"content-type": "text/plain; charset=utf-8"},
        body=f"invalid key {API_KEY}\nin header; try Bearer abc".encode(),
    )

    result = read_response(answer, items=1, sent_bytes=1, duration_s=0.0, secrets=[API_KEY])

    assert result.error == "HTTP 401: invalid key <redacted> in header; try Bearer abc"


def test_json_partial_success_is_read_with_int64_as_string() -> None:
    body = b'{"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 spans too old"}}'
    answer = Response(status=200, headers={"content-type": "application/json"}, body=body)

    result = read_response(answer, items=5, sent_bytes=1, duration_s=0.0)

    assert (result.ok, result.rejected, result.message) == (True, 2, "2 spans too old")


def test_unreadable_success_body_is_still_a_success() -> None:
    answer = Response(status=200, headers={"content-type": PROTOBUF}, body=b"\xff\xff\xff")

    assert read_response(answer, items=1, sent_bytes=1, duration_s=0.0) == ExportResult(
        ok=True, items=1, duration_s=0.0, status=200, sent_bytes=1
    )


# --- the exporter with a fake transport and clock ---------------------------------------------


@pytest.mark.parametrize(("deadline", "timeout_s"), [(None, 10.0), (100.25, 0.25), (500.0, 10.0)])
async def test_timeout_is_the_signal_timeout_or_the_time_to_the_deadline(
    deadline: float | None, timeout_s: float
) -> None:
    transport = FakeTransport()
    exporter = OTLPExporter(transport, traces_signal("http://collector:4318"), TRACES, clock=lambda: 100.0)

    result = await exporter.export(lambda_spans(), deadline=deadline)

    [(url, body, headers, sent_timeout_s)] = transport.posts
    assert (url, sent_timeout_s) == ("http://collector:4318/v1/traces", timeout_s)
    assert headers == {
        "user-agent": f"lambda-otel-extension/{__version__}",
        "x-api-key": API_KEY,
        "content-type": PROTOBUF,
        "content-encoding": "gzip",
    }
    assert result == ExportResult(ok=True, items=2, duration_s=0.0, status=200, sent_bytes=len(body))


@pytest.mark.parametrize("deadline", [99.0, 100.0])
async def test_a_passed_deadline_sends_nothing(deadline: float) -> None:
    transport = FakeTransport()
    exporter = OTLPExporter(transport, traces_signal("http://collector:4318"), TRACES, clock=lambda: 100.0)

    result = await exporter.export(lambda_spans(), deadline=deadline)

    assert transport.posts == []
    assert (result.ok, result.retryable, result.status, result.sent_bytes) == (False, True, None, 0)
    assert result.error == "deadline passed before sending"


async def test_no_spans_sends_nothing() -> None:
    transport = FakeTransport()

    result = await OTLPExporter(transport, traces_signal("http://c:4318"), TRACES).export([], deadline=None)

    assert (transport.posts, result.ok, result.items) == ([], True, 0)


# --- the exporter against real endpoints ------------------------------------------------------


async def test_protobuf_gzip_export_arrives_decoded(receiver: OTLPReceiver, session: HTTPClient) -> None:
    """Names, ids, attributes and status arrive; so do our headers, gzip-encoded, and the size we report."""
    result = await exporter_for(session, traces_signal(receiver.endpoint)).export(lambda_spans(), deadline=None)

    assert (result.ok, result.status, result.items, result.retryable, result.rejected) == (True, 200, 2, False, 0)
    root, child = receiver.spans()
    assert (root.name, root.trace_id, root.span_id, root.parent_span_id) == (
        "my-fn",
        f"{TRACE_ID:032x}",
        f"{ROOT_ID:016x}",
        f"{REMOTE_PARENT_ID:016x}",
    )
    assert (child.name, child.trace_id, child.parent_span_id) == (
        "responseLatency",
        f"{TRACE_ID:032x}",
        f"{ROOT_ID:016x}",
    )
    assert root.attributes == {"faas.invocation_id": "6d68ca91", "faas.coldstart": True, "faas.max_memory": 134217728}
    assert child.span.status.message == "Runtime.ExitError"
    assert root.resource["service.name"] == "my-fn"
    [request] = receiver.requests
    assert request.headers["X-Api-Key"] == API_KEY
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["User-Agent"] == f"lambda-otel-extension/{__version__}"
    assert request.content_type == PROTOBUF
    assert request.wire_size_bytes == result.sent_bytes > 0


async def test_json_export_round_trips_hex_ids(receiver: OTLPReceiver, session: HTTPClient) -> None:
    signal = traces_signal(receiver.endpoint, protocol="http/json", compression="none")

    result = await exporter_for(session, signal).export(lambda_spans(), deadline=None)

    assert (result.ok, result.status) == (True, 200)
    [request] = receiver.requests
    assert (request.content_type, request.headers.get("Content-Encoding")) == ("application/json", None)
    assert [(s.name, s.trace_id, s.span_id) for s in receiver.spans()] == [
        ("my-fn", f"{TRACE_ID:032x}", f"{ROOT_ID:016x}"),
        ("responseLatency", f"{TRACE_ID:032x}", f"{CHILD_ID:016x}"),
    ]


@pytest.mark.parametrize(("mode", "status"), [(FaultMode.FAIL_503, 503), (FaultMode.THROTTLE_429, 429)])
async def test_unavailable_and_throttled_are_retryable(
    receiver: OTLPReceiver, session: HTTPClient, mode: FaultMode, status: int
) -> None:
    receiver.mode = mode

    result = await exporter_for(session, traces_signal(receiver.endpoint)).export(lambda_spans(), deadline=None)

    assert (result.ok, result.retryable, result.status) == (False, True, status)
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert result.retry_after == ("1" if status == 429 else None)
    assert receiver.refused[mode] == 1


async def test_bad_request_is_not_retryable_and_never_echoes_headers(session: HTTPClient) -> None:
    async def echo_key(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=400, text=f"bad request from key {request.headers['x-api-key']}")

    async with serve(echo_key) as base:
        result = await exporter_for(session, traces_signal(base)).export(lambda_spans(), deadline=None)

    assert (result.ok, result.retryable, result.status) == (False, False, 400)
    assert result.error == "HTTP 400: bad request from key <redacted>"


async def test_reset_connection_is_a_retryable_transport_failure(
    receiver: OTLPReceiver, session: HTTPClient
) -> None:
    """A reset on a new connection is reported, not raised, and not sent again by the transport: only a pooled
    connection that went stale is (the retry policy decides about the rest)."""
    receiver.mode = FaultMode.RESET

    result = await exporter_for(session, traces_signal(receiver.endpoint)).export(lambda_spans(), deadline=None)

    assert (result.ok, result.retryable, result.status) == (False, True, None)
    assert result.error is not None and API_KEY not in result.error
    assert result.sent_bytes > 0
    assert receiver.refused[FaultMode.RESET] == 1


async def test_a_hanging_endpoint_is_bounded_by_the_deadline(
    receiver: OTLPReceiver, session: HTTPClient
) -> None:
    receiver.mode = FaultMode.HANG
    started = time.monotonic()

    result = await exporter_for(session, traces_signal(receiver.endpoint)).export(
        lambda_spans(), deadline=started + 0.3
    )

    elapsed_s = time.monotonic() - started
    assert (result.ok, result.retryable, result.status) == (False, True, None)
    assert result.error is not None and result.error.startswith("no response within")
    assert elapsed_s < 2.0  # a correctness bound (0.3 s plus slack), not a benchmark
    assert receiver.held == 1  # sent once: a timeout is not a stale connection


async def test_a_passed_deadline_sends_nothing_to_the_receiver(
    receiver: OTLPReceiver, session: HTTPClient
) -> None:
    exporter = exporter_for(session, traces_signal(receiver.endpoint))

    result = await exporter.export(lambda_spans(), deadline=time.monotonic() - 0.001)

    assert (result.ok, result.retryable, result.sent_bytes) == (False, True, 0)
    assert receiver.requests == [] and receiver.refused_count == 0


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_stale_keepalive_connection_is_retried_on_a_fresh_one(session: HTTPClient, how: str) -> None:
    """GIVEN an endpoint that forgets idle connections (as one does while Lambda is frozen)
    WHEN the second export goes out on the pooled connection and it is dropped unanswered
    THEN the export succeeds on a new connection, without surfacing the error."""
    answered: set[object] = set()
    accepted: list[bytes] = []
    dropped = 0

    async def forgetful(request: web.Request) -> web.Response:
        nonlocal dropped
        body = await request.read()
        connection = request.transport
        assert connection is not None
        if connection in answered:
            dropped += 1
            if how == "reset":
                sock = connection.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.abort()
            return web.Response()  # never written: the connection is gone
        answered.add(connection)
        accepted.append(body)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)

    async with serve(forgetful) as base:
        exporter = exporter_for(session, traces_signal(base))
        first = await exporter.export(lambda_spans(), deadline=None)
        second = await exporter.export(lambda_spans(), deadline=None)

    assert (first.ok, second.ok, second.error) == (True, True, None)
    assert (dropped, len(answered), len(accepted)) == (1, 2, 2)


async def test_a_refused_connection_is_mapped_to_transport_error(session: HTTPClient) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(TransportError) as raised:
        await HTTPTransport(session).post(f"http://127.0.0.1:{port}/v1/traces", b"", {}, timeout_s=2.0)

    assert isinstance(raised.value.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_partial_success_is_reported_not_raised(session: HTTPClient, protocol: OTLPProtocol) -> None:
    partial = ExportTracePartialSuccess(rejected_spans=1, error_message="span responseLatency: too old")

    async def partly(request: web.Request) -> web.Response:
        await request.read()
        if request.content_type == PROTOBUF:
            return web.Response(
                body=ExportTraceServiceResponse(partial_success=partial).SerializeToString(), content_type=PROTOBUF
            )
        return web.json_response({"partialSuccess": {"rejectedSpans": "1", "errorMessage": partial.error_message}})

    async with serve(partly) as base:
        signal = traces_signal(base, protocol=protocol)
        result = await exporter_for(session, signal).export(lambda_spans(), deadline=None)

    assert (result.ok, result.status, result.items, result.error) == (True, 200, 2, None)
    assert (result.rejected, result.message) == (1, "span responseLatency: too old")


async def test_transport_answers_with_plain_lower_case_headers(session: HTTPClient) -> None:
    async with serve(protobuf_answer(ExportTraceServiceResponse())) as base:
        response = await HTTPTransport(session).post(
            f"{base}/v1/traces", b"", {"Content-Type": PROTOBUF}, timeout_s=2.0
        )

    assert response.status == 200
    assert response.headers["content-type"] == PROTOBUF
    assert all(name == name.lower() for name in response.headers)
    assert response.body == b""
