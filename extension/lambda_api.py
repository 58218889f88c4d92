"""Client of the Extensions API (register, next, errors) and the Telemetry API (subscribe)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from extension.errors import LambdaAPIError
from extension.events import Invoke, Shutdown
from extension.wire import parse_next_event

EXTENSION_API: Final = "2020-01-01/extension"
TELEMETRY_API: Final = "2022-07-01/telemetry"
SCHEMA_VERSION: Final = "2022-12-13"  # the first with JSON-object log records
ID_HEADER: Final = "Lambda-Extension-Identifier"
ERROR_TYPE_HEADER: Final = "Lambda-Extension-Function-Error-Type"


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    extension_id: str
    function_name: str | None
    function_version: str | None
    handler: str | None


class ExtensionsAPI:
    """One verb per call. `next_event` has no read timeout: the environment may stay frozen for hours."""

    def __init__(self, session: aiohttp.ClientSession, runtime_api: str) -> None:
        self._session = session
        self._base = f"http://{runtime_api}"
        self._id = ""
        self.initialized = False
        """True once `next` was called: from then on a failure is an exit error, before it an init error."""

    async def register(self, name: str, events: Sequence[str] = ("INVOKE", "SHUTDOWN")) -> Registration:
        body = await self._call("POST", f"{EXTENSION_API}/register", {"Lambda-Extension-Name": name},
                                {"events": list(events)}, expect=200)
        self._id = body.headers.get(ID_HEADER, "")
        if not self._id:
            raise LambdaAPIError(body.status, "register answered without an extension identifier")
        info = body.json if isinstance(body.json, dict) else {}
        return Registration(extension_id=self._id, function_name=info.get("functionName"),
                            function_version=info.get("functionVersion"), handler=info.get("handler"))

    async def next_event(self) -> Invoke | Shutdown:
        self.initialized = True
        answer = await self._call("GET", f"{EXTENSION_API}/event/next", {ID_HEADER: self._id}, None, expect=200)
        return parse_next_event(answer.raw)

    async def subscribe(self, uri: str, types: Sequence[str], *, timeout_ms: int = 25) -> bool:
        """Subscribe the listener; False when the platform has no Telemetry API (local emulators: 202/404)."""
        subscription = {"schemaVersion": SCHEMA_VERSION, "types": list(types),
                        "buffering": {"maxItems": 1000, "maxBytes": 262_144, "timeoutMs": timeout_ms},
                        "destination": {"protocol": "HTTP", "URI": uri}}
        answer = await self._call("PUT", TELEMETRY_API, {ID_HEADER: self._id}, subscription, expect=None)
        if answer.status in (202, 404):
            return False
        if not 200 <= answer.status < 300:
            raise LambdaAPIError(answer.status, _error_text(answer.json))
        return True

    async def init_error(self, error_type: str, message: str) -> None:
        await self._report_error("init/error", error_type, message)

    async def exit_error(self, error_type: str, message: str) -> None:
        await self._report_error("exit/error", error_type, message)

    async def _report_error(self, path: str, error_type: str, message: str) -> None:
        await self._call("POST", f"{EXTENSION_API}/{path}", {ID_HEADER: self._id, ERROR_TYPE_HEADER: error_type},
                         {"errorMessage": message, "errorType": error_type}, expect=202)

    async def _call(self, method: str, path: str, headers: dict[str, str], body: Any,
                    *, expect: int | None) -> _Answer:
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with self._session.request(method, f"{self._base}/{path}", data=data, headers=headers) as response:
                raw = await response.read()
                answer = _Answer(status=response.status, headers=dict(response.headers), raw=raw)
        except (aiohttp.ClientError, OSError) as exc:
            raise LambdaAPIError(0, f"{method} /{path} failed: {type(exc).__name__}") from exc
        if expect is not None and answer.status != expect:
            raise LambdaAPIError(answer.status, f"{method} /{path}: {_error_text(answer.json)}")
        return answer


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        try:
            return orjson.loads(self.raw) if self.raw else None
        except orjson.JSONDecodeError:
            return None


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('errorType', '')}: {body.get('errorMessage', '')}".strip(": ")
    return "unexpected answer"
