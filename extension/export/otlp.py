"""OTLP/HTTP export of any signal: a pure request encoder, a pure response reader, and the exporter between them.

What differs between traces, logs and metrics is held by a `Codec`: how items become an export request, and
which key of an OTLP/JSON partial success counts the rejected items.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeAlias, TypeVar

import orjson

from extension import __version__, forwarded
from extension.config import Compression, OTLPProtocol, SignalExport
from extension.errors import TransportError
from extension.export import json_body, protobuf
from extension.export.retry import RETRYABLE_STATUS
from extension.export.transport import Response, Transport
from extension.forwarded import Forwarded
from extension.telemetry import LogData, MetricsWindow, SpanData

if TYPE_CHECKING:
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
    from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

USER_AGENT: Final = f"lambda-otel-extension/{__version__}"
# zlib levels 1-3 use its fast deflate: on a 1,000-span batch level 3 took half the CPU of level 6 for
# about 3% more bytes (random trace and span ids do not compress at any level). A small function gets a
# sliver of a vCPU, billed while we compress; the bytes are cheap.
GZIP_LEVEL: Final = 3

_CONTENT_TYPES: Final[Mapping[OTLPProtocol, str]] = {
    "http/protobuf": "application/x-protobuf",
    "http/json": "application/json",
}
_MAX_DETAIL_CHARS: Final = 200
# Shorter header values are no credentials, and redacting them would mangle ordinary words.
_MIN_SECRET_CHARS: Final = 8
# What the encoders raise for a value its field cannot hold (a time before 1970 or after 2554, an integer beyond
# int64, text that is not valid Unicode).
_UNENCODABLE: Final = (ValueError, TypeError, OverflowError)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec(Generic[T]):
    """One signal's shape on the wire: how the extension's own items and what the function sent to the receiver
    (extension.forwarded) become one export request."""

    signal: str  # traces, logs, metrics: for messages
    own: type  # the extension's own items: SpanData, LogData or MetricsWindow
    protobuf: Callable[[list[Any]], bytes]  # own items to a request, in protobuf
    json: Callable[[list[Any]], dict[str, Any]]  # and in OTLP/JSON
    shape: forwarded.Shape
    rejected_key: str  # the OTLP/JSON partial success's count of refused items

    def encode(self, items: Sequence[T], protocol: OTLPProtocol) -> bytes:
        """The request's body: protobuf requests concatenate, so the forwarded groups are appended as bytes."""
        own = [item for item in items if isinstance(item, self.own)]
        theirs: list[Forwarded[Any]] = [item for item in items if isinstance(item, Forwarded)]
        if protocol == "http/json":
            document = self.json(own)
            if theirs:
                from extension.export import otlp_json  # protobuf's JSON support, for http/json alone

                groups = otlp_json.to_document(self._forwarded(theirs))
                document[self.shape.document_key].extend(groups.get(self.shape.document_key, []))
            return orjson.dumps(document)
        body = self.protobuf(own)
        return body + self._forwarded(theirs).SerializeToString() if theirs else body

    def _forwarded(self, items: list[Forwarded[Any]]) -> Any:
        """What the function sent, as an export request of its own."""
        request = self.shape.request()
        forwarded.merge(request, items, self.shape)
        return request


# One buffer per signal holds both the extension's own items and the function's, and one request carries both.
SpanItem: TypeAlias = "SpanData | Forwarded[Span]"
LogItem: TypeAlias = "LogData | Forwarded[LogRecord]"
MetricsItem: TypeAlias = "MetricsWindow | Forwarded[Metric]"

TRACES: Final[Codec[SpanItem]] = Codec(signal="traces", own=SpanData, protobuf=protobuf.encode_spans,
                                       json=json_body.spans_document, shape=forwarded.TRACES,
                                       rejected_key="rejectedSpans")
LOGS: Final[Codec[LogItem]] = Codec(signal="logs", own=LogData, protobuf=protobuf.encode_logs,
                                    json=json_body.logs_document, shape=forwarded.LOGS,
                                    rejected_key="rejectedLogRecords")
# Metrics are exported as whole collection windows; windows that failed before go out with the next.
METRICS: Final[Codec[MetricsItem]] = Codec(signal="metrics", own=MetricsWindow, protobuf=protobuf.encode_metrics,
                                           json=json_body.metrics_document, shape=forwarded.METRICS,
                                           rejected_key="rejectedDataPoints")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """The outcome of one OTLP request: what the caller logs, and what its retry policy reads."""

    ok: bool  # the endpoint accepted the request (2xx), perhaps only in part: see `rejected`
    items: int  # spans, log records or metric windows in the request
    duration_s: float
    status: int | None = None  # the HTTP status; None when no answer came back or nothing was sent
    error: str | None = None  # why it failed; never holds a header value
    retryable: bool = False  # the same request may succeed later
    sent_bytes: int = 0  # the request body as sent (compressed); 0 when nothing was sent
    rejected: int = 0  # items the endpoint refused in an accepted request (OTLP partial success)
    message: str | None = None  # the endpoint's partial-success message
    retry_after: str | None = None  # the raw Retry-After header of a refused request, for the retry policy
    attempts: int = 1  # requests sent for this export, retries included; 0 when none could be sent
    unencodable: int = 0  # items left out because OTLP cannot hold their values (counted, never sent)
    timed_out: bool = False  # no answer within the timeout: the collector may be hanging

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


class ItemExporter(Protocol[T_contra]):
    """What sends one signal's items: the OTLP exporter, the resilient one around it, and tests' fakes."""

    async def export(self, items: Sequence[T_contra], *, deadline: float | None) -> ExportResult: ...
    def closing(self) -> None:
        """The next flush is the last (SHUTDOWN): items left in the buffer after it are lost."""


def encode_request(
    items: Sequence[T], protocol: OTLPProtocol, compression: Compression, codec: Codec[T]
) -> tuple[bytes, dict[str, str]]:
    """The body and content headers of an OTLP/HTTP request."""
    body = codec.encode(items, protocol)
    headers = {"content-type": _CONTENT_TYPES[protocol]}
    if compression == "gzip":
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)  # mtime=0: same items, same bytes
        headers["content-encoding"] = "gzip"
    return body, headers


def read_response(
    response: Response, *, items: int, sent_bytes: int, duration_s: float, secrets: Iterable[str] = (),
    codec: Codec[Any] = TRACES,
) -> ExportResult:
    """The result an HTTP answer means; `secrets` (header values) are scrubbed from any text it quotes."""
    secrets = tuple(secrets)
    if 200 <= response.status < 300:
        rejected, message = _partial_success(response, codec)
        return ExportResult(
            ok=True,
            items=items,
            duration_s=duration_s,
            status=response.status,
            sent_bytes=sent_bytes,
            rejected=rejected,
            message=None if message is None else _redact(message, secrets),
        )
    return ExportResult(
        ok=False,
        items=items,
        duration_s=duration_s,
        status=response.status,
        error=_redact(_http_error(response), secrets),
        retryable=response.status in RETRYABLE_STATUS,
        sent_bytes=sent_bytes,
        retry_after=response.headers.get("retry-after"),
    )


class OTLPExporter(Generic[T]):
    """Sends items of one signal to its OTLP/HTTP endpoint: one request per export(), no retries, no logging."""

    def __init__(self, transport: Transport, signal: SignalExport, codec: Codec[T], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._transport = transport
        self._signal = signal
        self._codec = codec
        self._clock = clock

    async def export(self, items: Sequence[T], *, deadline: float | None) -> ExportResult:
        """Send `items` in one request that ends by `deadline` (a clock() time; None: the signal's timeout)."""
        started = self._clock()
        if not items:
            return ExportResult(ok=True, items=0, duration_s=0.0, attempts=0)
        if self._time_left_s(deadline) <= 0:  # before encoding, which costs CPU for nothing then
            return self._unsent(items, started)
        count = len(items)
        try:
            body, content_headers = self._encode(items)
        except _UNENCODABLE:
            # One item made of garbled telemetry must neither take its batch down with it nor raise out of the
            # flush (which would end the extension): leave out what cannot be encoded, send the rest.
            items = [item for item in items if self._encodes(item)]
            if not items:
                return ExportResult(ok=False, items=count, duration_s=self._clock() - started, attempts=0,
                                    error=f"{count} {self._codec.signal} items could not be encoded",
                                    unencodable=count)
            body, content_headers = self._encode(items)
        unencodable = count - len(items)
        timeout_s = self._time_left_s(deadline)
        if timeout_s <= 0:
            return self._unsent(items, started)
        headers = {"user-agent": USER_AGENT, **self._signal.headers, **content_headers}
        try:
            response = await self._transport.post(self._signal.endpoint, body, headers, timeout_s=timeout_s)
        except TransportError as exc:
            return ExportResult(
                ok=False,
                items=count,
                duration_s=self._clock() - started,
                error=_redact(str(exc), self._signal.headers.values()),
                retryable=True,
                sent_bytes=len(body),
                # The transport maps a timeout to TransportError from the TimeoutError it caught.
                timed_out=isinstance(exc.__cause__, TimeoutError),
                unencodable=unencodable,
            )
        result = read_response(
            response,
            items=count,
            sent_bytes=len(body),
            duration_s=self._clock() - started,
            secrets=self._signal.headers.values(),
            codec=self._codec,
        )
        return dataclasses.replace(result, unencodable=unencodable) if unencodable else result

    def closing(self) -> None:
        """The last flush comes next; one request per export either way, so nothing changes."""

    def _time_left_s(self, deadline: float | None) -> float:
        if deadline is None:
            return self._signal.timeout_s
        return min(self._signal.timeout_s, deadline - self._clock())

    def _encode(self, items: Sequence[T]) -> tuple[bytes, dict[str, str]]:
        return encode_request(items, self._signal.protocol, self._signal.compression, self._codec)

    def _encodes(self, item: T) -> bool:
        try:
            self._codec.encode([item], self._signal.protocol)
        except _UNENCODABLE:
            return False
        return True

    def _unsent(self, items: Sequence[T], started: float) -> ExportResult:
        return ExportResult(
            ok=False,
            items=len(items),
            duration_s=self._clock() - started,
            error="deadline passed before sending",
            retryable=True,
            attempts=0,
        )


def _partial_success(response: Response, codec: Codec[Any]) -> tuple[int, str | None]:
    """(rejected items, message) from an OTLP answer; (0, None) when it has none or cannot be read."""
    content_type = response.headers.get("content-type", "")
    if not response.body:
        return 0, None
    if "json" in content_type:
        return _partial_success_json(response.body, codec.rejected_key)
    if "protobuf" in content_type:
        try:
            return protobuf.read_partial_success(response.body)
        except ValueError:
            return 0, None
    return 0, None


def _partial_success_json(body: bytes, rejected_key: str) -> tuple[int, str | None]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, None
    partial = document.get("partialSuccess") if isinstance(document, dict) else None
    if not isinstance(partial, dict):
        return 0, None
    rejected = partial.get(rejected_key, 0)  # an int64: proto3 JSON may write it as a string
    message = partial.get("errorMessage")
    return (
        int(rejected) if isinstance(rejected, int | str) and str(rejected).isdigit() else 0,
        message if isinstance(message, str) and message else None,
    )


def _http_error(response: Response) -> str:
    content_type = response.headers.get("content-type", "")
    if not response.body or not (content_type.startswith("text/") or "json" in content_type):
        return f"HTTP {response.status}"
    text = " ".join(response.body[: _MAX_DETAIL_CHARS * 4].decode("utf-8", "replace").split())
    detail = text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…"
    return f"HTTP {response.status}: {detail}"


def _redact(text: str, secrets: Iterable[str]) -> str:
    # Our own messages never quote headers, but an endpoint may echo a bad API key back in its answer;
    # a credential is often the last word of its value ("Bearer <token>"), so words are scrubbed too.
    for value in secrets:
        for secret in (value, *re.split(r"[\s,;=]+", value)):
            if len(secret) >= _MIN_SECRET_CHARS:
                text = text.replace(secret, "<redacted>")
    return text
