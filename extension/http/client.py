"""A small HTTP/1.1 client with a keep-alive pool per origin: the OTLP exports, the Extensions API after the fast
start, and the secrets' AWS calls.

One request at a time per connection, bodies sent with Content-Length, answers read whole up to a limit. TLS
with the system's trust store for https (its context is made, and the store read, on the first https request).
No proxies, no redirects, no cookies: none is wanted for an OTLP endpoint or an AWS API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from extension.http.message import MAX_HEAD_BYTES, encode_request, parse_response_head, response_framing
from extension.http.stream import BodyTooLarge, read_body, read_head

if TYPE_CHECKING:
    import ssl

# Closes idle connections well before common server and load-balancer idle timeouts (ALB: 60 s), so the pool
# rarely hands out a connection the server already dropped (and one that was, is retried once: see request).
KEEPALIVE_S: Final = 15.0
# Traces, logs and metrics may flush at once; more idle connections would only sit there across freezes.
MAX_IDLE_PER_ORIGIN: Final = 4
# RFC 8305's recommended wait before racing the next address (an endpoint whose IPv6 route is broken).
HAPPY_EYEBALLS_DELAY_S: Final = 0.25
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """An HTTP answer: status, headers with lower-case names (repeats joined by ", "), and the body; a body past
    the request's limit is left unread, given as b"" and marked `truncated`."""

    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False


class StaleConnection(ConnectionError):
    """A pooled connection the peer had closed while it was idle: nothing of the answer came back."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class HTTPClient:
    """Use as `async with HTTPClient() as client`; leaving closes every pooled connection."""

    def __init__(self, *, keepalive_s: float = KEEPALIVE_S, clock: Callable[[], float] = time.monotonic,
                 tls: ssl.SSLContext | None = None) -> None:
        """`tls`: the context for https (default: the system's trust store, made on first use)."""
        self._keepalive_s = keepalive_s
        self._clock = clock
        self._idle: dict[Origin, list[_Connection]] = {}
        self._tls = tls

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes = b"",
                      timeout_s: float | None, max_response_bytes: int = 1024 * 1024) -> Response:
        """Send one request and read its answer, all within `timeout_s` (None: no limit, for a long poll).

        TimeoutError past it; OSError (ConnectionError among them) when the connection fails; HTTPMessageError
        when the answer is not HTTP/1.1; ValueError for a URL that is not http or https.
        """
        origin, authority, target = _parse_url(url)
        raw = encode_request(method, authority, target, headers or {}, body)
        async with asyncio.timeout(timeout_s):
            connection, reused = await self._connection(origin)
            try:
                return await self._exchange(origin, connection, raw, method, max_response_bytes)
            except StaleConnection:
                if not reused:
                    raise
            # A pooled connection that sat idle across a Lambda freeze is often dead (the peer timed it out) and
            # only says so now, before any answer. Send once more on a fresh one: the request had no effect, and
            # OTLP receivers tolerate duplicates anyway.
            return await self._exchange(origin, await self._open(origin), raw, method, max_response_bytes)

    async def _exchange(self, origin: Origin, connection: _Connection, raw: bytes, method: str,
                        max_response_bytes: int) -> Response:
        reusable = False
        try:
            connection.writer.write(raw)
            try:
                await connection.writer.drain()
                head_bytes = await read_head(connection.reader)
            except (ConnectionResetError, BrokenPipeError) as error:
                raise StaleConnection(str(error) or type(error).__name__) from error
            if head_bytes is None:
                raise StaleConnection("the server closed the connection before answering")
            head = parse_response_head(head_bytes)
            while 100 <= head.status < 200:  # interim answers (100 Continue): the real one follows
                head = parse_response_head(await read_head(connection.reader) or b"")
            framing = response_framing(head, method=method)
            try:
                body = await read_body(connection.reader, framing, max_response_bytes)
            except BodyTooLarge:
                return Response(status=head.status, headers=head.headers, body=b"", truncated=True)
            reusable = head.keep_alive and framing.kind != "close"
            return Response(status=head.status, headers=head.headers, body=body)
        except asyncio.IncompleteReadError as error:
            raise ConnectionError("the connection closed in the middle of the answer") from error
        finally:  # also on cancellation: a connection with an unread answer cannot be used again
            if reusable:
                self._release(origin, connection)
            else:
                connection.close()

    async def _connection(self, origin: Origin) -> tuple[_Connection, bool]:
        """An idle connection to `origin` that is still fresh, else a new one; True when it was pooled."""
        idle = self._idle.get(origin, [])
        while idle:
            connection = idle.pop()
            if self._clock() - connection.idle_since < self._keepalive_s and not connection.reader.at_eof():
                return connection, True
            connection.close()
        return await self._open(origin), False

    async def _open(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = self._tls_context() if scheme == "https" else None
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None,
                                                       limit=MAX_HEAD_BYTES,
                                                       happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S)
        return _Connection(reader, writer)

    def _release(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = self._clock()
        idle.append(connection)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import ssl  # loaded already (asyncio imports it); only an https endpoint pays for reading the store

            self._tls = ssl.create_default_context()
        return self._tls


def _parse_url(url: str) -> tuple[Origin, str, str]:
    """(origin, the Host header's value, the request target)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets in the Host header
    if port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, host, port), authority, target
