"""A small HTTP/1.1 server on a socket that is listening already (the fast start bound it before the first `next`).

Made for the extension's two loopback servers, the telemetry listener and the in-function receiver: POST routes
whose handlers take the whole body and answer at once, without awaiting (they hand the body over and return).
Keep-alive, Content-Length and chunked bodies, `Expect: 100-continue`; a body past `max_body_bytes` is 413 and
never held in memory; a malformed request is 400 and ends its connection; a handler that raises is 500 and
never ends the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from extension import log
from extension.errors import HTTPMessageError
from extension.http.message import MAX_HEAD_BYTES, Framing, encode_response, parse_request_head, request_framing
from extension.http.stream import BodyTooLarge, read_body, read_head

# A refused body up to this size is read and thrown away, so the client reads our 413 instead of a reset
# connection and the connection stays usable; a larger one ends its connection.
MAX_DISCARD_BYTES: Final = 64 * 1024 * 1024
_DISCARD_CHUNK: Final = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type without its parameters, lower case; "" when there is none."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def text(status: int, text: str) -> Reply:
        return Reply(status, text.encode(), {"content-type": "text/plain; charset=utf-8"})


Handler = Callable[[Request], Reply]


@asynccontextmanager
async def serve(routes: Mapping[str, Handler], listener: socket.socket, *, max_body_bytes: int) -> AsyncIterator[int]:
    """Serve POSTs to `routes` (path -> handler) on `listener` while the block runs, connections queued there
    before included; yields the port. Leaving the block closes the listener and every connection."""
    connections: set[asyncio.Task[None]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 -- asyncio runs each connection callback in a task
        connections.add(task)
        try:
            await _serve_connection(reader, writer, routes, max_body_bytes)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            # Only serve() cancels these tasks, when it closes. Returning instead of re-raising keeps Python 3.11's
            # stream callback from printing a traceback for every connection still open (fixed in 3.12).
            pass
        finally:
            connections.discard(task)
            writer.close()

    listener.setblocking(False)
    server = await asyncio.start_server(on_connection, sock=listener, limit=MAX_HEAD_BYTES)
    try:
        yield int(listener.getsockname()[1])
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            routes: Mapping[str, Handler], max_body_bytes: int) -> None:
    while True:
        try:
            raw = await read_head(reader)
            if raw is None:
                return
            head = parse_request_head(raw)
            framing = request_framing(head)
        except HTTPMessageError as error:
            await _send(writer, Reply.text(400, str(error)), close=True)
            return
        handler = routes.get(head.path)
        if head.headers.get("expect", "").lower() == "100-continue":
            if not _continues(framing, max_body_bytes):  # the client waits before sending it: no need to read it
                await _send(writer, Reply.text(413, f"body exceeds {max_body_bytes} bytes"), close=True)
                return
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = await read_body(reader, framing, max_body_bytes)
        except BodyTooLarge as error:
            drained = framing.kind == "length" and framing.length <= MAX_DISCARD_BYTES
            if drained:
                await _discard(reader, framing.length)
            await _send(writer, Reply.text(413, str(error)), close=not (drained and head.keep_alive))
            if drained and head.keep_alive:
                continue
            return
        except HTTPMessageError as error:
            await _send(writer, Reply.text(400, str(error)), close=True)
            return
        if handler is None:
            reply = Reply.text(404, "not found")
        elif head.method != "POST":
            reply = Reply(405, headers={"allow": "POST"})
        else:
            reply = _handle(handler, Request(method=head.method, path=head.path, headers=head.headers, body=body))
        await _send(writer, reply, close=not head.keep_alive)
        if not head.keep_alive:
            return


def _continues(framing: Framing, max_body_bytes: int) -> bool:
    return framing.kind != "length" or framing.length <= max_body_bytes


def _handle(handler: Handler, request: Request) -> Reply:
    try:
        return handler(request)
    except Exception:  # one bad request must not end the server; said once per failure
        log.get().exception("request_failed", path=request.path)
        return Reply.text(500, "internal error")


async def _send(writer: asyncio.StreamWriter, reply: Reply, *, close: bool) -> None:
    writer.write(encode_response(reply.status, reply.headers, reply.body, close=close))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(length, _DISCARD_CHUNK))
        if not chunk:
            return
        length -= len(chunk)
