"""The egress HTTP seam: a one-verb `Transport` Protocol, and the adapter over our HTTP client that alone maps
its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from extension.errors import HTTPMessageError, TransportError
from extension.http.client import HTTPClient, Response

__all__ = ["HTTPTransport", "Response", "Transport"]

# An OTLP answer is a few bytes; an error page from a misconfigured endpoint must not fill a 128 MB sandbox.
MAX_RESPONSE_BYTES: Final = 64 * 1024
_MAPPED: Final = (TimeoutError, OSError, HTTPMessageError, ValueError)


class Transport(Protocol):
    """Sends one HTTP POST; raises TransportError when no HTTP answer came back within `timeout_s`."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response: ...


class HTTPTransport:
    """A Transport over a caller-owned HTTPClient, the one place its errors become TransportError."""

    def __init__(self, client: HTTPClient) -> None:
        self._client = client

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response:
        if timeout_s <= 0:
            raise TransportError("no time left to send")
        try:
            return await self._client.request("POST", url, headers=headers, body=body, timeout_s=timeout_s,
                                              max_response_bytes=MAX_RESPONSE_BYTES)
        except _MAPPED as exc:
            raise TransportError(_describe(exc, timeout_s)) from exc


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no response within {timeout_s:.3g} s"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
