"""OTLP/HTTP span export: a pure request encoder, a pure response reader, and the exporter between them."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan

from extension import __version__
from extension.config import Compression, OTLPProtocol, SignalExport
from extension.errors import TransportError
from extension.export.retry import RETRYABLE_STATUS
from extension.export.transport import Response, Transport

USER_AGENT: Final = f"lambda-otel-extension/{__version__}"
# zlib levels 1-3 use its fast deflate: on a 1,000-span batch level 3 took half the CPU of level 6 for
# about 3% more bytes (random trace and span ids do not compress at any level). A small function gets a
# sliver of a vCPU, billed while we compress; the bytes are cheap.
GZIP_LEVEL: Final = 3

_CONTENT_TYPES: Final[Mapping[OTLPProtocol, str]] = {
    "http/protobuf": "application/x-protobuf",
    "http/json": "application/json",
}
_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId")
_MAX_DETAIL_CHARS: Final = 200
# Shorter header values are no credentials, and redacting them would mangle ordinary words.
_MIN_SECRET_CHARS: Final = 8
# What the protobuf encoder raises for a value its field cannot hold (a fixed64 time before 1970 or after 2554).
_UNENCODABLE: Final = (ValueError, TypeError, OverflowError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """The outcome of one OTLP request: what the caller logs, and what its retry policy reads."""

    ok: bool  # the endpoint accepted the request (2xx), perhaps only in part: see `rejected`
    items: int  # spans in the request
    duration_s: float
    status: int | None = None  # the HTTP status; None when no answer came back or nothing was sent
    error: str | None = None  # why it failed; never holds a header value
    retryable: bool = False  # the same request may succeed later
    sent_bytes: int = 0  # the request body as sent (compressed); 0 when nothing was sent
    rejected: int = 0  # spans the endpoint refused in an accepted request (OTLP partial success)
    message: str | None = None  # the endpoint's partial-success message
    retry_after: str | None = None  # the raw Retry-After header of a refused request, for the retry policy
    attempts: int = 1  # requests sent for this export, retries included; 0 when none could be sent
    unencodable: int = 0  # spans left out because OTLP cannot hold their values (counted, never sent)
    timed_out: bool = False  # no answer within the timeout: the collector may be hanging

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


def encode_request(
    spans: Sequence[ReadableSpan], protocol: OTLPProtocol, compression: Compression
) -> tuple[bytes, dict[str, str]]:
    """The body and content headers of an OTLP/HTTP traces request."""
    request = encode_spans(spans)
    body = orjson.dumps(_otlp_json(request)) if protocol == "http/json" else request.SerializeToString()
    headers = {"content-type": _CONTENT_TYPES[protocol]}
    if compression == "gzip":
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)  # mtime=0: same spans, same bytes
        headers["content-encoding"] = "gzip"
    return body, headers


def read_response(
    response: Response, *, items: int, sent_bytes: int, duration_s: float, secrets: Iterable[str] = ()
) -> ExportResult:
    """The result an HTTP answer means; `secrets` (header values) are scrubbed from any text it quotes."""
    secrets = tuple(secrets)
    if 200 <= response.status < 300:
        rejected, message = _partial_success(response)
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


class OTLPSpanExporter:
    """Sends spans to one OTLP/HTTP traces endpoint: one request per export(), no retries, no logging."""

    def __init__(
        self, transport: Transport, signal: SignalExport, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._transport = transport
        self._signal = signal
        self._clock = clock

    async def export(self, spans: Sequence[ReadableSpan], *, deadline: float | None) -> ExportResult:
        """Send `spans` in one request that ends by `deadline` (a clock() time; None: the signal's timeout)."""
        started = self._clock()
        if not spans:
            return ExportResult(ok=True, items=0, duration_s=0.0, attempts=0)
        if self._time_left_s(deadline) <= 0:  # before encoding, which costs CPU for nothing then
            return self._unsent(spans, started)
        count = len(spans)
        try:
            body, content_headers = encode_request(spans, self._signal.protocol, self._signal.compression)
        except _UNENCODABLE:
            # One span made of garbled telemetry must neither take its batch down with it nor raise out of the
            # flush (which would end the extension): leave out what cannot be encoded, send the rest.
            spans = [span for span in spans if _encodes(span)]
            if not spans:
                return ExportResult(ok=False, items=count, duration_s=self._clock() - started, attempts=0,
                                    error=f"{count} spans could not be encoded", unencodable=count)
            body, content_headers = encode_request(spans, self._signal.protocol, self._signal.compression)
        unencodable = count - len(spans)
        timeout_s = self._time_left_s(deadline)
        if timeout_s <= 0:
            return self._unsent(spans, started)
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
        )
        return dataclasses.replace(result, unencodable=unencodable) if unencodable else result

    def closing(self) -> None:
        """The last flush comes next; one request per export either way, so nothing changes."""

    def _time_left_s(self, deadline: float | None) -> float:
        if deadline is None:
            return self._signal.timeout_s
        return min(self._signal.timeout_s, deadline - self._clock())

    def _unsent(self, spans: Sequence[ReadableSpan], started: float) -> ExportResult:
        return ExportResult(
            ok=False,
            items=len(spans),
            duration_s=self._clock() - started,
            error="deadline passed before sending",
            retryable=True,
            attempts=0,
        )


def _encodes(span: ReadableSpan) -> bool:
    try:
        encode_spans([span])
    except _UNENCODABLE:
        return False
    return True


def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    # OTLP/JSON is proto3 JSON except that ids are hex where proto3 JSON writes bytes as base64.
    document: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _ids_to_hex(span)
                for link in span.get("links", ()):
                    _ids_to_hex(link)
    return document


def _ids_to_hex(node: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        if key in node:
            node[key] = base64.b64decode(node[key]).hex()


def _partial_success(response: Response) -> tuple[int, str | None]:
    """(rejected spans, message) from an OTLP answer; (0, None) when it has none or cannot be read."""
    content_type = response.headers.get("content-type", "")
    if not response.body:
        return 0, None
    if "json" in content_type:
        return _partial_success_json(response.body)
    if "protobuf" in content_type:
        answer = ExportTraceServiceResponse()
        try:
            answer.ParseFromString(response.body)
        except DecodeError:
            return 0, None
        partial = answer.partial_success
        return partial.rejected_spans, partial.error_message or None
    return 0, None


def _partial_success_json(body: bytes) -> tuple[int, str | None]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, None
    partial = document.get("partialSuccess") if isinstance(document, dict) else None
    if not isinstance(partial, dict):
        return 0, None
    rejected = partial.get("rejectedSpans", 0)  # an int64: proto3 JSON may write it as a string
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
