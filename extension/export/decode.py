"""OTLP/HTTP request bodies back into export requests: gzip with a bound on the inflated size, then protobuf or
OTLP/JSON. The extension's in-function receiver decodes with it, and so does the local sandbox's collector."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from extension.config import Signal
from extension.errors import BadOTLPBody, OTLPBodyTooLarge

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
CONTENT_TYPES: Final = (PROTOBUF, JSON)
ENCODINGS: Final = ("", "identity", "gzip")

ExportRequest: TypeAlias = ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest

NEW_REQUEST: Final[Mapping[Signal, Callable[[], ExportRequest]]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


def decompress(body: bytes, content_encoding: str, max_size: int) -> bytes:
    """The body without its gzip/identity encoding, refusing to inflate past `max_size` bytes.

    ValueError for an encoding other than those in ENCODINGS (the caller answers 415 before reading the body).
    """
    if content_encoding in ("", "identity"):
        return body
    if content_encoding != "gzip":
        raise ValueError(f"unsupported content encoding {content_encoding!r}")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # max_length bounds the memory a small, highly compressed body can claim.
        inflated = inflater.decompress(body, max_size + 1)
    except zlib.error as exc:
        raise BadOTLPBody(f"invalid gzip body: {exc}") from None
    if len(inflated) > max_size:
        raise OTLPBodyTooLarge(f"decompressed body exceeds {max_size} bytes")
    if not inflater.eof:
        raise BadOTLPBody("truncated gzip body")
    return inflated


def decode_export_request(signal: Signal, content_type: str, body: bytes) -> ExportRequest:
    """The signal's Export*ServiceRequest in an OTLP/HTTP body (protobuf or OTLP/JSON); BadOTLPBody when it is
    not one, ValueError for a content type other than those in CONTENT_TYPES."""
    if content_type == PROTOBUF:
        message = NEW_REQUEST[signal]()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise BadOTLPBody(f"invalid protobuf body: {exc}") from None
        return message
    if content_type == JSON:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadOTLPBody(f"invalid JSON body: {exc}") from None
        from extension.export import otlp_json  # protobuf's JSON support: only a function that sends JSON pays for it

        return otlp_json.from_document(document, NEW_REQUEST[signal]())
    raise ValueError(f"unsupported content type {content_type!r}")


def export_response(content_type: str) -> tuple[bytes, str]:
    """An empty Export*ServiceResponse (full success, the same for every signal) in the request's content type:
    the body and its type. An empty message is no bytes at all in protobuf, and {} in proto3 JSON."""
    return (b"{}", JSON) if content_type == JSON else (b"", PROTOBUF)
