"""An aiohttp server on a socket that is listening already (the fast start bound it before the first `next`)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application, listener: socket.socket, *, auto_decompress: bool = True,
                ) -> AsyncIterator[int]:
    """Serve `app` on `listener` while the block runs, connections queued there before included; yields the port.
    `auto_decompress=False` leaves bodies as sent, for a server that inflates them itself within a bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                           auto_decompress=auto_decompress)
    await runner.setup()
    try:
        listener.setblocking(False)
        await web.SockSite(runner, listener).start()
        yield int(listener.getsockname()[1])
    finally:
        await runner.cleanup()
