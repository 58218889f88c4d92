"""The telemetry listener: accept each Telemetry API POST, hand its body over, answer 200 at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from extension.http.server import Handler, Reply, Request

Accept = Callable[[bytes], None]
# Lambda may send up to 2 * maxBytes plus metadata in one POST (telemetry-api); leave room for that.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


def routes(accept: Accept, path: str) -> dict[str, Handler]:
    """The listener's one route, its secret path: code in the function cannot guess it to inject platform events."""

    def receive(request: Request) -> Reply:
        accept(request.body)  # parses and never raises: a bad batch must not stop the good ones
        return Reply(200)

    return {path: receive}
