"""The telemetry listener answers 200 to every delivery, malformed or not, and only on its secret path."""

from __future__ import annotations

import io

import aiohttp

from extension.bootstrap import bind_listener, secret_path
from extension.listener import MAX_BODY_BYTES, listening


async def test_every_post_is_answered_and_handed_over() -> None:
    received: list[bytes] = []
    path = secret_path()
    bodies = (b"not json", b"[]", b'[{"time": "2024-01-01T00:00:00.000Z", "type": "platform.x"}]')
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    async with listening(received.append, path, sock), aiohttp.ClientSession() as client:
        for body in bodies:
            async with client.post(f"http://127.0.0.1:{port}{path}", data=body) as response:
                assert response.status == 200
        async with client.post(f"http://127.0.0.1:{port}/guessed", data=b"[]") as response:
            assert response.status == 404  # code in the function cannot inject fake platform events
    assert received == list(bodies)


def test_secret_paths_are_unguessable() -> None:
    paths = {secret_path() for _ in range(100)}
    assert len(paths) == 100 and all(len(p) >= 20 for p in paths)


async def test_an_oversized_delivery_is_refused_and_the_next_one_accepted() -> None:
    received: list[bytes] = []
    path = secret_path()
    sock = bind_listener("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    async with listening(received.append, path, sock), aiohttp.ClientSession() as client:
        async with client.post(url, data=io.BytesIO(b"[" + b" " * MAX_BODY_BYTES + b"]")) as response:
            assert response.status == 413  # bounded memory: the body is never read whole
        async with client.post(url, data=b"[]") as response:
            assert response.status == 200
    assert received == [b"[]"]
