"""The telemetry listener: accept each Telemetry API POST, hand its body over, answer 200 at once."""

from __future__ import annotations

from collections.abc import Callable
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
