"""The Extensions API client against a real HTTP server: until the first event arrived a failure is an init
error, afterwards an exit error (the fast start sends the first `next` while the extension still initialises)."""

from __future__ import annotations

import json
import time

from aiohttp import web

from extension.bootstrap import bind_listener, send_next
from extension.events import Invoke, Shutdown
from extension.http.client import HTTPClient
from extension.lambda_api import ERROR_TYPE_HEADER, ExtensionsAPI

INVOKE = {"eventType": "INVOKE", "deadlineMs": 0, "requestId": "r-1",
          "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
SHUTDOWN = {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}


async def test_init_errors_until_the_first_event_and_exit_errors_after() -> None:
    events = [INVOKE, SHUTDOWN]
    errors: list[tuple[str, str]] = []

    async def next_event(request: web.Request) -> web.Response:
        event = dict(events.pop(0), deadlineMs=int(time.time() * 1000) + 3000)
        return web.json_response(event)

    async def error(request: web.Request) -> web.Response:
        errors.append((request.path.rsplit("/", 2)[-2], request.headers[ERROR_TYPE_HEADER]))
        return web.json_response({"status": "OK"}, status=202)

    app = web.Application()
    app.router.add_get("/2020-01-01/extension/event/next", next_event)
    app.router.add_post("/2020-01-01/extension/{kind}/error", error)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = bind_listener("127.0.0.1", 0)
    await web.SockSite(runner, sock).start()
    runtime_api = f"127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with HTTPClient() as session:
            # As the fast start leaves it: the first `next` sent on a raw socket, its answer unread.
            api = ExtensionsAPI(session, runtime_api, "id-1", pending_next=send_next(runtime_api, "id-1"))
            assert not api.initialized  # the answer to the first `next` has not been read yet
            await api.init_error("Extension.ConfigInvalid", "before any event")
            assert isinstance(await api.next_event(), Invoke) and api.initialized
            assert isinstance(await api.next_event(), Shutdown)
            await api.exit_error("Extension.UnknownReason", "after")
    finally:
        await runner.cleanup()
    assert errors == [("init", "Extension.ConfigInvalid"), ("exit", "Extension.UnknownReason")]
    assert json.dumps(events) == "[]"
