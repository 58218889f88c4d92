"""A local OTLP/HTTP receiver that decodes and records what the extension exports (sandbox, demos, tests)."""

from __future__ import annotations

import asyncio
import enum
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, TypeVar

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from extension.config import Signal as ConfigSignal
from extension.errors import BadOTLPBody
from extension.export import decode, otlp_json
from extension.export.decode import JSON, PROTOBUF, ExportRequest, decompress

__all__ = [
    "JSON",
    "PROTOBUF",
    "AttrValue",
    "BodyError",
    "ExportRequest",
    "FaultMode",
    "OTLPReceiver",
    "ReceivedLogRecord",
    "ReceivedMetric",
    "ReceivedRequest",
    "ReceivedSpan",
    "Signal",
    "any_value_to_python",
    "attributes_to_dict",
    "decode_export_request",
    "decode_recorded",
    "decompress",
    "export_request_from_json",
    "export_request_to_json",
    "load_recorded",
    "spans_of",
]

DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024 * 1024

AttrValue: TypeAlias = "str | int | float | bool | bytes | list[AttrValue] | dict[str, AttrValue] | None"

_T = TypeVar("_T")


class Signal(enum.StrEnum):
    """An OTLP signal; its value is the last segment of its /v1/<signal> path."""

    TRACES = "traces"
    LOGS = "logs"
    METRICS = "metrics"


class FaultMode(enum.Enum):
    """How the receiver answers: normally, or with one injected fault."""

    OK = "ok"
    FAIL_503 = "fail_503"
    THROTTLE_429 = "throttle_429"
    HANG = "hang"
    RESET = "reset"
    DOWN = "down"
    """The port is closed and open connections are dropped: clients get "connection refused". Switched
    with ``await receiver.switch(...)``, which reopens the port, the same one, when the mode changes back."""


BodyError = BadOTLPBody
"""A request body that cannot be decoded as the OTLP request it claims to be."""


# --- attribute values -------------------------------------------------------------------------


def any_value_to_python(value: AnyValue) -> AttrValue:
    """The plain Python value of an AnyValue; None when it holds nothing."""
    match value.WhichOneof("value"):
        case "string_value":
            return value.string_value
        case "bool_value":
            return value.bool_value
        case "int_value":
            return value.int_value
        case "double_value":
            return value.double_value
        case "bytes_value":
            return value.bytes_value
        case "array_value":
            return [any_value_to_python(item) for item in value.array_value.values]
        case "kvlist_value":
            return attributes_to_dict(value.kvlist_value.values)
        case _:
            return None


def attributes_to_dict(key_values: Iterable[KeyValue]) -> dict[str, AttrValue]:
    """OTLP attributes as a dict of plain Python values (a repeated key keeps its last value)."""
    return {kv.key: any_value_to_python(kv.value) for kv in key_values}


# --- what arrived -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedRequest:
    """One accepted export request, decoded, with how it arrived."""

    signal: Signal
    message: ExportRequest
    headers: CIMultiDictProxy[str]
    content_type: str
    received_unix_nano: int
    wire_size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedSpan:
    """A span with its resource and scope, attributes decoded."""

    resource: dict[str, AttrValue]
    scope_name: str
    scope_version: str
    span: Span
    attributes: dict[str, AttrValue]

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedLogRecord:
    """A log record with its resource and scope, body and attributes decoded."""

    resource: dict[str, AttrValue]
    scope_name: str
    scope_version: str
    record: LogRecord
    body: AttrValue
    attributes: dict[str, AttrValue]

    @property
    def trace_id(self) -> str:
        return self.record.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.record.span_id.hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMetric:
    """A metric with its resource and scope; the data points stay in the proto."""

    resource: dict[str, AttrValue]
    scope_name: str
    scope_version: str
    metric: Metric

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def kind(self) -> str | None:
        """Which data field is set: gauge, sum, histogram, exponential_histogram or summary."""
        return self.metric.WhichOneof("data")


def spans_of(message: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(
            resource=attributes_to_dict(resource_spans.resource.attributes),
            scope_name=scope_spans.scope.name,
            scope_version=scope_spans.scope.version,
            span=span,
            attributes=attributes_to_dict(span.attributes),
        )
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _log_records_of(message: ExportLogsServiceRequest) -> list[ReceivedLogRecord]:
    return [
        ReceivedLogRecord(
            resource=attributes_to_dict(resource_logs.resource.attributes),
            scope_name=scope_logs.scope.name,
            scope_version=scope_logs.scope.version,
            record=record,
            body=any_value_to_python(record.body),
            attributes=attributes_to_dict(record.attributes),
        )
        for resource_logs in message.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def _metrics_of(message: ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    return [
        ReceivedMetric(
            resource=attributes_to_dict(resource_metrics.resource.attributes),
            scope_name=scope_metrics.scope.name,
            scope_version=scope_metrics.scope.version,
            metric=metric,
        )
        for resource_metrics in message.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]


# --- decoding: the extension's own decoder, so the sandbox checks what the extension's receiver accepts ------

_SIGNALS: Final[Mapping[Signal, ConfigSignal]] = {
    Signal.TRACES: "traces", Signal.LOGS: "logs", Signal.METRICS: "metrics",
}  # fmt: skip


def decode_export_request(signal: Signal, content_type: str, body: bytes) -> ExportRequest:
    """Decode an OTLP/HTTP body (protobuf or OTLP/JSON) into the signal's Export*ServiceRequest."""
    return decode.decode_export_request(_SIGNALS[signal], content_type, body)


def export_request_from_json(signal: Signal, document: Any) -> ExportRequest:
    """Parse an OTLP/JSON document (hex ids, enums as ints or names, unknown fields ignored)."""
    return otlp_json.from_document(document, decode.NEW_REQUEST[_SIGNALS[signal]]())


def export_request_to_json(message: ExportRequest) -> dict[str, Any]:
    """The OTLP/JSON form of a request: camelCase keys, enums as ints, ids as hex."""
    return otlp_json.to_document(message)


# --- the JSON-lines record --------------------------------------------------------------------


def _record_line(request: ReceivedRequest) -> str:
    entry = {
        "signal": request.signal.value,
        "received_unix_nano": request.received_unix_nano,
        "content_type": request.content_type,
        "body": export_request_to_json(request.message),
    }
    return json.dumps(entry, separators=(",", ":")) + "\n"


def load_recorded(path: Path) -> list[dict[str, Any]]:
    """The entries a receiver appended to its record file, oldest first."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def decode_recorded(entry: Mapping[str, Any]) -> ExportRequest:
    """The protobuf request behind one entry of load_recorded()."""
    return export_request_from_json(Signal(entry["signal"]), entry["body"])


# --- the server -------------------------------------------------------------------------------


def _reset_connection(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send a RST instead of a FIN: the client sees "connection reset".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _export_response(signal: Signal, content_type: str) -> web.Response:
    body, answer_type = decode.export_response(content_type)
    return web.Response(body=body, content_type=answer_type)


class OTLPReceiver:
    """An OTLP/HTTP collector on a local port that keeps everything it accepts.

    Use as ``async with OTLPReceiver() as receiver:``; ``receiver.endpoint`` is the base URL. Faults
    are switched with ``receiver.mode = FaultMode.X`` or ``set_mode(X, next_requests=n)`` at any time,
    and with ``await receiver.switch(X)``, which alone can close the port (DOWN) and open it again.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_path: Path | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        retry_after_s: int = 1,
        close_timeout_s: float = 2.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._host = host
        self._port = port
        self._record_path = record_path
        self._max_body_size = max_body_size
        self._close_timeout_s = close_timeout_s
        self._clock = clock
        self.retry_after_s = retry_after_s
        self.response_delay_s = 0.0
        """A slow collector: every accepted request is answered this much later (recorded on arrival)."""
        self.requests: list[ReceivedRequest] = []
        self.refused: Counter[FaultMode] = Counter()
        self.rejected: Counter[int] = Counter()
        self._mode = FaultMode.OK
        self._mode_remaining: int | None = None
        self._held = 0
        self._closing = False
        # Swapped for a fresh event on every mode change, so held requests wake exactly once per change.
        self._mode_changed = asyncio.Event()
        # Notified when a request is recorded or held: what the wait_for_* helpers wait on.
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._bound_port: int | None = None

    # lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=self._max_body_size)
        for signal in Signal:
            app.router.add_post(f"/v1/{signal.value}", self._handler_for(signal))
        # auto_decompress=False: we inflate ourselves, to bound the inflated size and answer 400.
        runner = web.AppRunner(
            app, access_log=None, auto_decompress=False, shutdown_timeout=self._close_timeout_s
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self._bound_port = int(runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is None:
            return
        self._closing = True
        self._mode_changed.set()  # releases held requests, which then reset their connections
        runner, self._runner, self._site = self._runner, None, None
        await runner.cleanup()

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("OTLPReceiver is not started")
        return self._bound_port

    @property
    def endpoint(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    # faults

    @property
    def mode(self) -> FaultMode:
        return self._mode

    @mode.setter
    def mode(self, mode: FaultMode) -> None:
        self.set_mode(mode)

    def set_mode(self, mode: FaultMode, *, next_requests: int | None = None) -> None:
        """Answer with mode from now on, or only for the next next_requests requests, then OK."""
        if FaultMode.DOWN in (mode, self._mode):
            raise ValueError("closing or reopening the port takes `await receiver.switch(mode)`")
        self._change_mode(mode, next_requests)

    async def switch(self, mode: FaultMode, *, next_requests: int | None = None) -> None:
        """set_mode for every mode. DOWN returns once the port refuses connections and the open ones are
        closed (held requests are cut); leaving DOWN returns once the same port accepts connections again."""
        if mode is FaultMode.DOWN:
            if next_requests is not None:
                raise ValueError("DOWN refuses connections: it sees no requests to count")
            if self._mode is not FaultMode.DOWN:
                self._change_mode(mode, None)  # held requests wake up to find the collector gone
                await self._close_port()
            return
        was_down = self._mode is FaultMode.DOWN
        self._change_mode(mode, next_requests)
        if was_down:
            try:
                await self._open_port()
            except BaseException:
                self._change_mode(FaultMode.DOWN, None)
                raise

    async def _close_port(self) -> None:
        site, self._site = self._site, None
        if site is not None:
            await site.stop()
        server = self._runner.server if self._runner is not None else None
        for connection in server.connections if server is not None else []:
            connection.force_close()  # as when the collector's process dies: its connections close too

    async def _open_port(self) -> None:
        if self._runner is None or self._closing:
            return
        site = web.TCPSite(self._runner, self._host, self.port)  # SO_REUSEADDR: the port is free at once
        await site.start()
        self._site = site

    def _change_mode(self, mode: FaultMode, next_requests: int | None) -> None:
        if next_requests is not None and next_requests < 1:
            raise ValueError("next_requests must be at least 1")
        self._mode = mode
        self._mode_remaining = next_requests
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    @property
    def held(self) -> int:
        """How many requests HANG is holding right now."""
        return self._held

    @property
    def refused_count(self) -> int:
        return self.refused.total()

    def _take_mode(self) -> FaultMode:
        mode = self._mode
        if self._mode_remaining is not None:
            self._mode_remaining -= 1
            if self._mode_remaining == 0:
                self._mode, self._mode_remaining = FaultMode.OK, None
        return mode

    # what arrived

    @property
    def trace_requests(self) -> list[ExportTraceServiceRequest]:
        return [r.message for r in self.requests if isinstance(r.message, ExportTraceServiceRequest)]

    @property
    def log_requests(self) -> list[ExportLogsServiceRequest]:
        return [r.message for r in self.requests if isinstance(r.message, ExportLogsServiceRequest)]

    @property
    def metric_requests(self) -> list[ExportMetricsServiceRequest]:
        return [r.message for r in self.requests if isinstance(r.message, ExportMetricsServiceRequest)]

    def spans(self) -> list[ReceivedSpan]:
        return [span for message in self.trace_requests for span in spans_of(message)]

    def log_records(self) -> list[ReceivedLogRecord]:
        return [record for message in self.log_requests for record in _log_records_of(message)]

    def metrics(self) -> list[ReceivedMetric]:
        return [metric for message in self.metric_requests for metric in _metrics_of(message)]

    def clear(self) -> None:
        """Forget what arrived and the fault counts (the record file is kept)."""
        self.requests.clear()
        self.refused.clear()
        self.rejected.clear()

    async def wait_for_requests(self, n: int, timeout_s: float = 5.0) -> list[ReceivedRequest]:
        return await self._wait_for(lambda: list(self.requests), n, timeout_s, "requests")

    async def wait_for_spans(self, n: int, timeout_s: float = 5.0) -> list[ReceivedSpan]:
        return await self._wait_for(self.spans, n, timeout_s, "spans")

    async def wait_for_log_records(self, n: int, timeout_s: float = 5.0) -> list[ReceivedLogRecord]:
        return await self._wait_for(self.log_records, n, timeout_s, "log records")

    async def wait_for_metrics(self, n: int, timeout_s: float = 5.0) -> list[ReceivedMetric]:
        return await self._wait_for(self.metrics, n, timeout_s, "metrics")

    async def wait_for_held(self, n: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until HANG holds at least n requests."""
        await self._wait_until(lambda: self._held >= n, timeout_s, lambda: f"{self._held} held")

    async def _wait_for(
        self, collect: Callable[[], list[_T]], n: int, timeout_s: float, what: str
    ) -> list[_T]:
        await self._wait_until(lambda: len(collect()) >= n, timeout_s, lambda: f"{len(collect())} {what}")
        return collect()

    async def _wait_until(self, ready: Callable[[], bool], timeout_s: float, got: Callable[[], str]) -> None:
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            raise TimeoutError(f"not ready within {timeout_s}s, got {got()}") from None

    # request handling

    def _handler_for(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, signal)

        return handle

    async def _handle(self, request: web.Request, signal: Signal) -> web.StreamResponse:
        received_unix_nano = self._clock()
        mode = self._take_mode()
        while mode is FaultMode.HANG:
            if not await self._hold():
                self.refused[FaultMode.HANG] += 1
                _reset_connection(request)
                return web.Response()  # never written: the connection is gone
            mode = self._take_mode()
        if mode is not FaultMode.OK:
            return await self._refuse(request, mode)
        response = await self._accept(request, signal, received_unix_nano)
        if self.response_delay_s:
            await asyncio.sleep(self.response_delay_s)
        return response

    async def _hold(self) -> bool:
        """Wait for the next mode change; False when the receiver is closing instead."""
        if self._closing:
            return False
        self._held += 1
        await self._notify_changed()
        try:
            await self._mode_changed.wait()
        finally:
            self._held -= 1
        return not self._closing

    async def _refuse(self, request: web.Request, mode: FaultMode) -> web.StreamResponse:
        self.refused[mode] += 1
        if mode in (FaultMode.RESET, FaultMode.DOWN):  # DOWN: a request that raced the closing of the port
            _reset_connection(request)
            return web.Response()  # never written: the connection is gone
        # Read the body anyway so the connection stays usable for the client's retry.
        await request.read()
        if mode is FaultMode.THROTTLE_429:
            return web.Response(
                status=429, text="throttled (injected)", headers={hdrs.RETRY_AFTER: str(self.retry_after_s)}
            )
        return web.Response(status=503, text="unavailable (injected)")

    async def _accept(self, request: web.Request, signal: Signal, received_unix_nano: int) -> web.Response:
        content_type = request.content_type
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
        if content_type not in decode.CONTENT_TYPES or encoding not in decode.ENCODINGS:
            return self._reject(415, f"unsupported content type {content_type!r} or encoding {encoding!r}")
        wire_body = await request.read()
        try:
            message = decode_export_request(
                signal, content_type, decompress(wire_body, encoding, self._max_body_size)
            )
        except BodyError as exc:
            return self._reject(400, str(exc))
        await self._record(
            ReceivedRequest(
                signal=signal,
                message=message,
                headers=request.headers,
                content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
                received_unix_nano=received_unix_nano,
                wire_size_bytes=len(wire_body),
            )
        )
        return _export_response(signal, content_type)

    def _reject(self, status: int, reason: str) -> web.Response:
        self.rejected[status] += 1
        return web.Response(status=status, text=reason)

    async def _record(self, request: ReceivedRequest) -> None:
        self.requests.append(request)
        if self._record_path is not None:
            # Small appends of a dev tool; one line per request so a reader never sees half a request.
            with self._record_path.open("a", encoding="utf-8") as record:
                record.write(_record_line(request))
        await self._notify_changed()

    async def _notify_changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()
