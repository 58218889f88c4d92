"""The telemetry listener: accept each Telemetry API POST, hand its body over, answer 200 at once."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web

Accept = Callable[[bytes], None]
ACCEPT: Final = web.AppKey[Accept]("accept")
# Lambda may send up to 2 * maxBytes plus metadata in one POST (telemetry-api); leave room for that.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


async def _receive(request: web.Request) -> web.Response:
    body = await request.read()
    request.app[ACCEPT](body)  # parses and never raises: a bad batch must not stop the good ones
    return web.Response(status=200)


def make_app(accept: Accept, path: str) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[ACCEPT] = accept
    app.router.add_post(path, _receive)
    return app


@asynccontextmanager
async def serve(app: web.Application, listener: socket.socket) -> AsyncIterator[None]:
    """Serve on the socket the fast start bound (connections already queued there are served too)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        listener.setblocking(False)
        await web.SockSite(runner, listener).start()
        yield
    finally:
        await runner.cleanup()
