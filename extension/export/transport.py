"""The egress HTTP seam: a one-verb `Transport` Protocol, and the aiohttp adapter that alone maps its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp

from extension.errors import TransportError

# An OTLP answer is a few bytes; an error page from a misconfigured endpoint must not fill a 128 MB sandbox.
MAX_RESPONSE_BYTES: Final = 64 * 1024
# Closes idle connections well before common server and load-balancer idle timeouts (ALB: 60 s), so the
# pool rarely hands out a connection the server already dropped. Time spent frozen may not count, hence
# the retry in AiohttpTransport.
KEEPALIVE_TIMEOUT_S: Final = 15.0
# Traces, logs and metrics may flush at once; a few connections more would only sit idle across freezes.
CONNECTION_LIMIT: Final = 4
# Spares a DNS lookup on most flushes, yet follows a load balancer whose addresses change over minutes.
DNS_CACHE_TTL_S: Final = 60

# Errors of a connection that died while idle: the peer closed or reset it, and we learn it on first use.
_STALE_CONNECTION: Final = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientOSError,
)
_MAPPED: Final = (aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """An HTTP answer: status, headers with lower-case names (repeats joined by ", "), body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one HTTP POST; raises TransportError when no HTTP answer came back within `timeout_s`."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response: ...


class AiohttpTransport:
    """A Transport over a caller-owned aiohttp session (see make_session)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response:
        if timeout_s <= 0:
            raise TransportError("no time left to send")  # aiohttp reads a zero timeout as "none"
        try:
            async with await self._open(url, body, headers, timeout_s) as response:
                return Response(
                    status=response.status,
                    headers=_plain_headers(response.headers),
                    body=await _read_capped(response.content),
                )
        except _MAPPED as exc:
            raise TransportError(_describe(exc, timeout_s)) from exc

    async def _open(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> aiohttp.ClientResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await self._post(url, body, headers, timeout_s)
        except _STALE_CONNECTION as exc:
            # A pooled connection that sat idle across a Lambda freeze is often dead (the peer timed it
            # out) and only says so now, before any response. Send once more: the failed connection has
            # left the pool, and by now the loop has seen any other peer's FIN or RST, so the retry goes
            # out on a fresh connection. Resending is safe because OTLP receivers tolerate duplicates.
            # A failure to connect at all is not stale, so it is left to the caller's retry policy.
            remaining_s = timeout_s - (loop.time() - started)
            if isinstance(exc, aiohttp.ClientConnectorError) or remaining_s <= 0:
                raise
            return await self._post(url, body, headers, remaining_s)

    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> aiohttp.ClientResponse:
        return await self._session.post(
            url, data=body, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout_s)
        )


def make_session() -> aiohttp.ClientSession:
    """A session for OTLP egress; call it inside the running loop and close it when done."""
    connector = aiohttp.TCPConnector(
        limit=CONNECTION_LIMIT, keepalive_timeout=KEEPALIVE_TIMEOUT_S, ttl_dns_cache=DNS_CACHE_TTL_S
    )
    # No session-wide timeout: every post carries its own, derived from the flush deadline. trust_env is
    # off because only cli.py reads the environment.
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False)


async def _read_capped(content: aiohttp.StreamReader) -> bytes:
    body = bytearray()
    while len(body) < MAX_RESPONSE_BYTES:
        chunk = await content.read(MAX_RESPONSE_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _plain_headers(headers: Mapping[str, str]) -> dict[str, str]:
    plain: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        plain[key] = f"{plain[key]}, {value}" if key in plain else value
    return plain


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no response within {timeout_s:.3g} s"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
