"""Client of the Extensions API after the fast start: next events, and init or exit errors."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final

import orjson

from extension.bootstrap import EXTENSION_API, parse_response
from extension.errors import HTTPMessageError, LambdaAPIError
from extension.events import Invoke, Shutdown
from extension.http.client import HTTPClient
from extension.wire import parse_next_event

ID_HEADER: Final = "Lambda-Extension-Identifier"
ERROR_TYPE_HEADER: Final = "Lambda-Extension-Function-Error-Type"
# init/error and exit/error answer at once; one that does not must not hold up the extension's exit.
ERROR_REPORT_TIMEOUT_S: Final = 2.0
_FAILED: Final = (OSError, TimeoutError, HTTPMessageError)


class ExtensionsAPI:
    """One verb per call. `next_event` has no read timeout: the environment may stay frozen for hours."""

    def __init__(self, client: HTTPClient, runtime_api: str, extension_id: str,
                 *, pending_next: socket.socket | None = None) -> None:
        self._client = client
        self._base = f"http://{runtime_api}{EXTENSION_API}"
        self._id = extension_id
        self._pending_next = pending_next
        self.initialized = False
        """True once the first event arrived: from then on a failure is an exit error, before it an init error
        (the fast start sends the first `next` early, while the extension is still initialising)."""

    async def next_event(self) -> Invoke | Shutdown:
        event = await self._next()
        self.initialized = True
        return event

    async def _next(self) -> Invoke | Shutdown:
        if self._pending_next is not None:
            sock, self._pending_next = self._pending_next, None
            return await _answer_of(sock)
        try:
            response = await self._client.request("GET", f"{self._base}/event/next", headers={ID_HEADER: self._id},
                                                  timeout_s=None)
        except _FAILED as exc:
            raise LambdaAPIError(0, f"next failed: {type(exc).__name__}") from exc
        if response.status != 200:
            raise LambdaAPIError(response.status, f"next: {_error_text(response.body)}")
        return parse_next_event(response.body)

    async def init_error(self, error_type: str, message: str) -> None:
        await self._report_error("init/error", error_type, message)

    async def exit_error(self, error_type: str, message: str) -> None:
        await self._report_error("exit/error", error_type, message)

    async def _report_error(self, path: str, error_type: str, message: str) -> None:
        headers = {ID_HEADER: self._id, ERROR_TYPE_HEADER: error_type, "content-type": "application/json"}
        body = orjson.dumps({"errorMessage": message, "errorType": error_type})
        try:
            await self._client.request("POST", f"{self._base}/{path}", headers=headers, body=body,
                                       timeout_s=ERROR_REPORT_TIMEOUT_S)
        except _FAILED as exc:
            raise LambdaAPIError(0, f"{path} failed: {type(exc).__name__}") from exc


async def _answer_of(sock: socket.socket) -> Invoke | Shutdown:
    """Read the answer to the `next` the fast start sent: the server closes the connection after it."""
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        raw = await reader.read()
    finally:
        writer.close()
    try:
        response = parse_response(raw)
    except ValueError as error:
        raise LambdaAPIError(0, f"next: {error}") from error
    if response.status != 200:
        raise LambdaAPIError(response.status, f"next: {_error_text(response.body)}")
    return parse_next_event(response.body)


def _error_text(body: bytes) -> str:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "unexpected answer"
    if isinstance(parsed, dict):
        return f"{parsed.get('errorType', '')}: {parsed.get('errorMessage', '')}".strip(": ")
    return "unexpected answer"
