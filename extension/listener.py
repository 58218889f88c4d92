"""The telemetry listener: accept each Telemetry API POST, hand its body over, answer 200 at once."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

from extension.http.server import Reply, Request, serve

Accept = Callable[[bytes], None]
# Lambda may send up to 2 * maxBytes plus metadata in one POST (telemetry-api); leave room for that.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


def listening(accept: Accept, path: str, listener: socket.socket) -> AbstractAsyncContextManager[int]:
    """Serve the listener on `listener` while the block runs; yields the port. Its one route is its secret path:
    code in the function cannot guess it to inject platform events."""

    def receive(request: Request) -> Reply:
        accept(request.body)  # parses and never raises: a bad batch must not stop the good ones
        return Reply(200)

    return serve({path: receive}, listener, max_body_bytes=MAX_BODY_BYTES)
