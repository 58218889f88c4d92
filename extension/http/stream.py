"""Reading HTTP/1.1 heads and bodies off an asyncio stream, within limits: shared by the server and the client."""

from __future__ import annotations

import asyncio

from extension.errors import HTTPMessageError
from extension.http.message import MAX_HEAD_BYTES, Framing, parse_chunk_size

_CRLF = b"\r\n"


class BodyTooLarge(HTTPMessageError):
    """The body is longer than the reader's limit; the rest of it was not read."""


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next head without its final blank line; None when the peer closed before sending a byte of it.

    asyncio.IncompleteReadError when it closed half way, HTTPMessageError when the head is too large.
    """
    try:
        head = await reader.readuntil(_CRLF + _CRLF)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise HTTPMessageError(f"head larger than {MAX_HEAD_BYTES} bytes") from None
    return head[:-4]


async def read_body(reader: asyncio.StreamReader, framing: Framing, max_bytes: int) -> bytes:
    """The body as framed; BodyTooLarge past `max_bytes`, asyncio.IncompleteReadError if the peer closed early."""
    if framing.kind == "length":
        if framing.length > max_bytes:
            raise BodyTooLarge(f"body of {framing.length} bytes exceeds {max_bytes}")
        return await reader.readexactly(framing.length) if framing.length else b""
    if framing.kind == "close":
        body = await reader.read(max_bytes + 1)
        while len(body) <= max_bytes and (more := await reader.read(max_bytes + 1 - len(body))):
            body += more
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body exceeds {max_bytes} bytes")
        return body
    return await _read_chunked(reader, max_bytes)


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    body = bytearray()
    while True:
        size = parse_chunk_size(await _read_line(reader))
        if size == 0:
            break
        if len(body) + size > max_bytes:
            raise BodyTooLarge(f"chunked body exceeds {max_bytes} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != _CRLF:
            raise HTTPMessageError("chunk not followed by CRLF")
    while await _read_line(reader):  # trailer fields, up to the blank line: read and left out
        pass
    return bytes(body)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(_CRLF)
    except asyncio.LimitOverrunError:
        raise HTTPMessageError("chunk line too long") from None
    return line[:-2]
