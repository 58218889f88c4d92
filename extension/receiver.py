"""The in-function OTLP/HTTP receiver: on 127.0.0.1 only, decode what the function's SDK exports, hand it over,
answer at once.

POST /v1/traces, /v1/logs and /v1/metrics; application/x-protobuf or application/json, gzip or not. A valid
request is answered 200 with an empty Export*ServiceResponse (full success) in its own content type, before any
of it has left: it waits in the extension's buffers and leaves with the flush policy, so the function pays a
loopback round trip, never the collector's latency. Another content type or encoding is 415, a body that does
not decode is 400, one larger than MAX_BODY_BYTES (sent or inflated) is 413: each with a one-line reason.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from extension import log
from extension.bootstrap import RECEIVER_HOST, bind_listener
from extension.config import Signal
from extension.errors import BadOTLPBody, OTLPBodyTooLarge
from extension.export.decode import (
    CONTENT_TYPES,
    ENCODINGS,
    ExportRequest,
    decode_export_request,
    decompress,
    export_response,
)
from extension.http.server import Handler, Reply, Request, serve

Forward = Callable[[ExportRequest], None]
HOST: Final = RECEIVER_HOST  # loopback only: nothing outside the execution environment may send us data
# One request's limit, as sent and inflated: the SDK's batches are far smaller (512 spans by default), and the
# buffers hold about this much in all (OTEL_LAMBDA_BUFFER_MAX_BYTES).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
# OTLP/JSON costs about 50 times protobuf's CPU to decode (4 MiB: 1.4 s of one core, and 100 MiB of memory on the
# way), all of it on the event loop that answers `next`: its requests are held to a quarter of the limit.
MAX_JSON_BODY_BYTES: Final = MAX_BODY_BYTES // 4
SIGNALS: Final[tuple[Signal, ...]] = ("traces", "logs", "metrics")


def routes(forward: Forward) -> dict[str, Handler]:
    """POST /v1/<signal> for each signal."""

    def route(signal: Signal) -> Handler:
        return lambda request: _receive(request, signal, forward)

    return {f"/v1/{signal}": route(signal) for signal in SIGNALS}


def _receive(request: Request, signal: Signal, forward: Forward) -> Reply:
    content_type = request.content_type
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if content_type not in CONTENT_TYPES or encoding not in ENCODINGS:
        return Reply.text(415, f"unsupported content type {content_type!r} or encoding {encoding!r}; "
                               "use application/x-protobuf or application/json, gzip or none")
    limit = MAX_JSON_BODY_BYTES if content_type == "application/json" else MAX_BODY_BYTES
    if len(request.body) > limit:  # the server has refused anything past MAX_BODY_BYTES already
        return Reply.text(413, f"body exceeds {limit} bytes for {content_type}; send smaller batches")
    try:
        message = decode_export_request(signal, content_type, decompress(request.body, encoding, limit))
    except OTLPBodyTooLarge as error:
        return Reply.text(413, str(error))
    except BadOTLPBody as error:
        return Reply.text(400, str(error))
    forward(message)  # never raises: a bad request must not stop the good ones
    answer, answer_type = export_response(content_type)
    return Reply(200, answer, {"content-type": answer_type})


@asynccontextmanager
async def receiving(port: int | None, forward: Forward, *,
                    prebound: socket.socket | None = None) -> AsyncIterator[int | None]:
    """The receiver on `port` while the block runs (None: off), on the socket the fast start bound for it
    when that is the port. A port already taken (another extension's collector, say) is said once and the
    extension runs without the receiver; yields the port or None."""
    if prebound is not None and (port is None or prebound.getsockname()[1] != port):
        prebound.close()  # the strict settings disagree with the fast start's lenient read
        prebound = None
    if port is None:
        yield None
        return
    try:
        listener = prebound if prebound is not None else bind_listener(HOST, port)
    except OSError as error:
        log.get().error("receiver_unavailable", port=port, error=f"{type(error).__name__}: {error}",
                        fix="free the port or choose another with OTEL_LAMBDA_RECEIVER_PORT")
        yield None
        return
    async with serve(routes(forward), listener, max_body_bytes=MAX_BODY_BYTES) as bound:
        yield bound
