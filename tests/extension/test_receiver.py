"""The in-function receiver over real HTTP: protobuf, JSON and gzip are decoded and handed over, bad content
is refused with the right status, it answers at once on loopback only, and a taken port does not stop the
extension."""

from __future__ import annotations

import gzip
import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from extension import log
from extension.bootstrap import bind_listener
from extension.export import otlp_json
from extension.export.decode import ExportRequest
from extension.receiver import HOST, MAX_BODY_BYTES, MAX_JSON_BODY_BYTES, receiving

TRACES = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[
    Span(name="handler", trace_id=bytes(range(16)), span_id=bytes(range(8)))])])])
PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Received:
    def __init__(self) -> None:
        self.requests: list[ExportRequest] = []

    def __call__(self, request: ExportRequest) -> None:
        self.requests.append(request)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()
    async with receiving(0, received) as port:
        assert port is not None
        yield f"http://{HOST}:{port}", received


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns about large raw bytes
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers) as response:
        return response.status, await response.read(), response.content_type


async def test_protobuf_is_handed_over_and_answered_with_an_empty_response(
        receiver: tuple[str, Received]) -> None:
    url, received = receiver
    status, body, content_type = await post(f"{url}/v1/traces", TRACES.SerializeToString(), PROTOBUF)

    assert (status, content_type) == (200, "application/x-protobuf")
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert received.requests == [TRACES]


async def test_json_and_gzip_and_every_signal(receiver: tuple[str, Received]) -> None:
    url, received = receiver
    logs = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[
        LogRecord(trace_id=bytes(range(16)), span_id=bytes(range(8)))])])])
    document = json.dumps(otlp_json.to_document(logs)).encode()
    assert '"traceId": "000102030405060708090a0b0c0d0e0f"' in document.decode()  # hex ids, as OTLP/JSON says

    json_answer = await post(f"{url}/v1/logs", document, {"Content-Type": "application/json"})
    zipped_answer = await post(f"{url}/v1/traces", gzip.compress(TRACES.SerializeToString()),
                               {**PROTOBUF, "Content-Encoding": "gzip"})
    metrics_answer = await post(f"{url}/v1/metrics", b"", PROTOBUF)

    assert json_answer == (200, b"{}", "application/json")
    assert zipped_answer[0] == metrics_answer[0] == 200
    assert received.requests == [logs, TRACES, ExportMetricsServiceRequest()]


async def test_bad_content_is_refused_with_a_reason(receiver: tuple[str, Received]) -> None:
    url, received = receiver
    body = TRACES.SerializeToString()

    assert (await post(f"{url}/v1/traces", body, {"Content-Type": "text/plain"}))[0] == 415
    assert (await post(f"{url}/v1/traces", body, {**PROTOBUF, "Content-Encoding": "br"}))[0] == 415
    status, reason, _ = await post(f"{url}/v1/traces", b"\xff\xff\xff", PROTOBUF)
    assert status == 400 and reason.startswith(b"invalid protobuf body")
    status, reason, _ = await post(f"{url}/v1/traces", b"[1", {"Content-Type": "application/json"})
    assert status == 400 and reason.startswith(b"invalid JSON body")
    assert (await post(f"{url}/v1/traces", b"\x00" * (MAX_BODY_BYTES + 1), PROTOBUF))[0] == 413
    bomb = gzip.compress(b"\x00" * (MAX_BODY_BYTES + 1))  # small on the wire, too large inflated
    status, reason, _ = await post(f"{url}/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413 and b"exceeds" in reason
    # JSON is held to a quarter of the limit: decoding it is slow, and runs on the loop that answers `next`.
    status, reason, _ = await post(f"{url}/v1/traces", b" " * (MAX_JSON_BODY_BYTES + 1),
                                   {"Content-Type": "application/json"})
    assert status == 413 and b"application/json" in reason
    assert (await post(f"{url}/v1/spans", body, PROTOBUF))[0] == 404
    assert received.requests == []


async def test_it_listens_on_loopback_only(receiver: tuple[str, Received]) -> None:
    url, _ = receiver
    port = int(url.rsplit(":", 1)[1])
    # The kernel's table of sockets: the listening one (state 0A) at this port, and its local address.
    listening = [fields[1] for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
                 if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port]
    assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, little-endian; not 0.0.0.0
    assert not any(int(line.split()[1].rsplit(":", 1)[1], 16) == port and line.split()[3] == "0A"
                   for line in Path("/proc/net/tcp6").read_text().splitlines()[1:])


async def test_a_taken_port_is_said_once_and_the_extension_goes_on() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with log.capture() as logs:
            async with receiving(port, Received()) as bound:
                assert bound is None
    [line] = logs
    assert line["event"] == "receiver_unavailable" and line["port"] == port and line["level"] == "error"


async def test_off_is_off() -> None:
    async with receiving(None, Received()) as bound:
        assert bound is None


async def test_the_socket_the_fast_start_bound_is_served_and_connections_queued_before_are_answered() -> None:
    prebound = bind_listener(HOST, 0)
    port = prebound.getsockname()[1]
    # A function exporting during its own init connects before the receiver runs: the kernel queues it.
    early = socket.create_connection((HOST, port))
    early.close()
    received = Received()
    async with receiving(port, received, prebound=prebound) as bound:
        assert bound == port
        status, _, _ = await post(f"http://{HOST}:{port}/v1/traces", b"", {"content-type": "application/x-protobuf"})
    assert status == 200


async def test_a_prebound_socket_the_settings_turn_off_is_closed() -> None:
    prebound = bind_listener(HOST, 0)
    async with receiving(None, Received(), prebound=prebound) as bound:
        assert bound is None
    assert prebound.fileno() == -1
