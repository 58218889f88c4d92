"""The extension's HTTP/1.1: the pure message code, the server against raw sockets and aiohttp's client, and the
client against aiohttp's server (plain and TLS)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from extension.bootstrap import bind_listener
from extension.errors import HTTPMessageError
from extension.http.client import HTTPClient
from extension.http.message import (
    Framing,
    encode_request,
    parse_chunk_size,
    parse_request_head,
    parse_response_head,
    request_framing,
    response_framing,
)
from extension.http.server import Reply, Request, serve

# --- messages, no I/O --------------------------------------------------------------------------------------


def test_a_request_head_with_repeated_and_mixed_case_headers() -> None:
    head = parse_request_head(b"POST /v1/traces?x=1 HTTP/1.1\r\nHost: a\r\nX-Tag: one\r\nx-tag:two\r\n"
                              b"Content-Length: 3")

    assert (head.method, head.target, head.path, head.minor_version) == ("POST", "/v1/traces?x=1", "/v1/traces", 1)
    assert head.headers == {"host": "a", "x-tag": "one, two", "content-length": "3"}
    assert head.keep_alive and request_framing(head) == Framing("length", 3)


@pytest.mark.parametrize("raw", [
    b"POST /x HTTP/2.0",
    b"post /x HTTP/1.1",
    b"POST /x HTTP/1.1\r\n folded: line",
    b"POST /x HTTP/1.1\r\nno colon",
    b"POST /x HTTP/1.1\r\nbad name: v",
    b"POST /x HTTP/1.1\r\nx: a\x00b",
])
def test_malformed_request_heads_are_refused(raw: bytes) -> None:
    with pytest.raises(HTTPMessageError):
        parse_request_head(raw)


@pytest.mark.parametrize(("headers", "framing"), [
    (b"", Framing("length", 0)),
    (b"\r\nContent-Length: 12", Framing("length", 12)),
    (b"\r\nContent-Length: 12, 12", Framing("length", 12)),
    (b"\r\nTransfer-Encoding: chunked", Framing("chunked")),
])
def test_request_framing(headers: bytes, framing: Framing) -> None:
    assert request_framing(parse_request_head(b"POST / HTTP/1.1" + headers)) == framing


@pytest.mark.parametrize("headers", [
    b"\r\nContent-Length: 1, 2", b"\r\nContent-Length: -1", b"\r\nContent-Length: 1e3",
    b"\r\nTransfer-Encoding: gzip", b"\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
])
def test_ambiguous_or_unsupported_framing_is_refused(headers: bytes) -> None:
    with pytest.raises(HTTPMessageError):
        request_framing(parse_request_head(b"POST / HTTP/1.1" + headers))


def test_response_framing_and_keep_alive() -> None:
    ok = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2")
    assert (ok.status, ok.keep_alive, response_framing(ok, method="POST")) == (200, True, Framing("length", 2))
    until_close = parse_response_head(b"HTTP/1.0 200")
    assert (until_close.keep_alive, response_framing(until_close, method="GET")) == (False, Framing("close"))
    assert response_framing(parse_response_head(b"HTTP/1.1 204 No Content"), method="GET") == Framing("length", 0)
    assert response_framing(ok, method="HEAD") == Framing("length", 0)
    assert not parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: close").keep_alive


def test_encoded_requests_frame_their_body_themselves() -> None:
    raw = encode_request("POST", "example.com:4318", "/v1/traces", {"Content-Length": "999", "x-a": "1"}, b"abc")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"POST /v1/traces HTTP/1.1", b"host: example.com:4318", b"x-a: 1",
                                   b"content-length: 3"]
    assert body == b"abc"
    signed = encode_request("GET", "a", "/", {"Host": "signed.example.com"}, b"")
    assert signed == b"GET / HTTP/1.1\r\nHost: signed.example.com\r\n\r\n"
    with pytest.raises(HTTPMessageError):
        encode_request("POST", "a", "/", {"x-a": "1\r\nx-injected: 2"}, b"")


def test_chunk_sizes() -> None:
    assert (parse_chunk_size(b"1a"), parse_chunk_size(b"0"), parse_chunk_size(b"A;name=value")) == (26, 0, 10)
    for bad in (b"", b"-1", b"g", b"1" * 17):
        with pytest.raises(HTTPMessageError):
            parse_chunk_size(bad)


# --- the server ----------------------------------------------------------------------------------------------


@asynccontextmanager
async def our_server(*, max_body_bytes: int = 1024) -> AsyncIterator[tuple[int, list[Request]]]:
    seen: list[Request] = []

    def echo(request: Request) -> Reply:
        seen.append(request)
        return Reply(200, request.body, {"content-type": "application/octet-stream"})

    def broken(request: Request) -> Reply:
        raise RuntimeError("a bug")

    async with serve({"/echo": echo, "/broken": broken}, bind_listener("127.0.0.1", 0),
                     max_body_bytes=max_body_bytes) as port:
        yield port, seen


async def exchange(port: int, *raw: bytes) -> bytes:
    """Send the bytes on one connection, each part after the answer to the one before; all that came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = b""
    for part in raw:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.write_eof()
    answers = await reader.read()
    writer.close()
    return answers


async def test_keep_alive_chunked_bodies_and_100_continue_on_one_connection() -> None:
    async with our_server() as (port, seen):
        answers = await exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n"
            b"Trailer: x\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            b"ok",
        )

    assert [request.body for request in seen] == [b"hello", b"abcde", b"ok"]
    assert answers.count(b"HTTP/1.1 200 OK") == 3 and answers.count(b"HTTP/1.1 100 Continue") == 1
    assert answers.endswith(b"\r\n\r\nok")


async def test_a_body_past_the_limit_is_413_and_the_connection_goes_on() -> None:
    async with our_server(max_body_bytes=10) as (port, seen):
        answers = await exchange(
            port,
            b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\n" + b"x" * 11,
            b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\ny",
        )
        refused_at_once = await exchange(port, b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\n"
                                               b"Content-Length: 11\r\n\r\n")

    assert answers.startswith(b"HTTP/1.1 413 Content Too Large") and b"HTTP/1.1 200 OK" in answers
    assert [request.body for request in seen] == [b"y"]
    assert refused_at_once.startswith(b"HTTP/1.1 413") and b"100 Continue" not in refused_at_once


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", b"400"),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    (b"POST /echo HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n", b"400"),
    (b"POST /nowhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"404"),
    (b"GET /echo HTTP/1.1\r\n\r\n", b"405"),
    (b"POST /broken HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"500"),
])
async def test_bad_requests_get_their_status_and_the_server_goes_on(raw: bytes, status: bytes) -> None:
    async with our_server() as (port, seen):
        answer = await exchange(port, raw)
        after = await exchange(port, b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    assert answer.startswith(b"HTTP/1.1 " + status)
    assert after.startswith(b"HTTP/1.1 200") and b"connection: close" in after and seen[-1].body == b"ok"


async def test_aiohttps_client_talks_to_it() -> None:
    async with our_server() as (port, _), aiohttp.ClientSession() as client:
        for body in (b"", b"x" * 1000):
            async with client.post(f"http://127.0.0.1:{port}/echo", data=body) as response:
                assert (response.status, await response.read()) == (200, body)


async def test_leaving_the_block_closes_idle_connections_quietly() -> None:
    problems: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
    async with our_server() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed by the server, not left hanging
    writer.close()
    await asyncio.sleep(0.01)
    assert problems == []  # no traceback on stderr for the connection that was still open


# --- the client ----------------------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def aiohttp_server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, set[int]]]:
    """Yields the base URL and the set of client ports seen (one per connection)."""
    ports: set[int] = set()

    async def counting(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            ports.add(peer[1])
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{site.port}", ports
    finally:
        await runner.cleanup()


async def test_connections_are_kept_alive_and_bodies_read_however_they_are_framed() -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"part one, ")
            await response.write(body)
            await response.write_eof()
            return response
        return web.Response(body=body, headers={"X-Path": request.path})

    async with aiohttp_server(answer) as (base, ports), HTTPClient() as client:
        plain = await client.request("POST", f"{base}/plain", body=b"abc", timeout_s=2)
        chunked = await client.request("POST", f"{base}/chunked", body=b"two", timeout_s=2)
        empty = await client.request("GET", f"{base}/empty", timeout_s=2)

    assert (plain.status, plain.body, plain.headers["x-path"]) == (200, b"abc", "/plain")
    assert chunked.body == b"part one, two" and empty.body == b""
    assert len(ports) == 1  # one connection for all three


async def test_an_answer_past_the_limit_is_truncated_and_its_connection_dropped() -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async with aiohttp_server(big) as (base, ports), HTTPClient() as client:
        first = await client.request("GET", base, timeout_s=2, max_response_bytes=1000)
        second = await client.request("GET", base, timeout_s=2)

    assert (first.status, first.body, first.truncated) == (200, b"", True)
    assert (second.body, second.truncated) == (b"x" * 5000, False)
    assert len(ports) == 2


async def test_the_timeout_covers_the_whole_exchange() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async with aiohttp_server(slow) as (base, _), HTTPClient() as client:
        with pytest.raises(TimeoutError):
            await client.request("GET", base, timeout_s=0.2)


async def test_a_connection_closed_while_idle_is_replaced_without_an_error() -> None:
    async def once(request: web.Request) -> web.Response:
        return web.Response(body=b"ok", headers={"Connection": "keep-alive"})

    async with aiohttp_server(once) as (base, ports), HTTPClient(keepalive_s=60) as client:
        await client.request("GET", base, timeout_s=2)
        for connections in client._idle.values():  # as a server that timed the idle connection out
            for connection in connections:
                connection.writer.transport.abort()
        again = await client.request("GET", base, timeout_s=2)

    assert again.body == b"ok" and len(ports) == 2


def test_urls_other_than_http_are_refused() -> None:
    async def attempt(url: str) -> None:
        async with HTTPClient() as client:
            await client.request("GET", url, timeout_s=1)

    for url in ("ftp://example.com/", "localhost:4318/v1/traces", "http:///v1/traces"):
        with pytest.raises(ValueError, match="not an http or https URL"):
            asyncio.run(attempt(url))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_https_with_the_servers_certificate_checked(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async with aiohttp_server(hello, server_tls) as (base, _):
        async with HTTPClient(tls=ssl.create_default_context(cafile=str(cert))) as trusting:
            answer = await trusting.request("POST", f"{base}/v1/traces", body=b"secure", timeout_s=5)
        async with HTTPClient() as system_trust:  # a self-signed certificate is not in the system's store
            with pytest.raises(ssl.SSLCertVerificationError):
                await system_trust.request("POST", f"{base}/v1/traces", body=b"x", timeout_s=5)

    assert answer.body == b"secure"


async def test_a_private_ca_is_trusted_through_ssl_cert_file(certificate: tuple[Path, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL's own variable, which the extension inherits from the function's environment: a collector behind a
    private CA needs no setting of ours."""
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=b"trusted")

    async with aiohttp_server(hello, server_tls) as (base, _), HTTPClient() as client:
        answer = await client.request("GET", base, timeout_s=5)

    assert answer.body == b"trusted"


async def test_the_fast_starts_socket_queue_is_served() -> None:
    """Connections made before serve() starts (the kernel queues them on the listening socket) are answered."""
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    early = socket.create_connection(("127.0.0.1", port))
    early.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
    async with serve({"/echo": lambda request: Reply(200, request.body)}, listener, max_body_bytes=10):
        early.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=early)
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")
