"""HTTP/1.1 messages as bytes, both ways (RFC 9112): request and response heads, and how a body is framed.

Pure and standard library only. Only what the extension's two loopback servers and its one client need: no
HTTP/2, no trailers kept, no obsolete line folding (RFC 9112 §5.2 lets a recipient reject it, and we do).
Anything malformed raises HTTPMessageError with a short reason a 400 can carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from extension.errors import HTTPMessageError

# The largest head we read, request line or status line and every header: a few hundred bytes in practice.
MAX_HEAD_BYTES: Final = 32 * 1024
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (.*))?")
_REQUEST_LINE: Final = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.([01])")
_REASONS: Final = {100: "Continue", 200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found",
                   405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
                   415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
                   500: "Internal Server Error", 501: "Not Implemented"}


@dataclass(frozen=True, slots=True)
class Framing:
    """How the body after a head ends: after `length` bytes, with the last chunk, or when the peer closes."""

    kind: Literal["length", "chunked", "close"]
    length: int = 0


NO_BODY: Final = Framing("length", 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    method: str
    target: str  # the path and query as sent
    minor_version: int  # HTTP/1.<minor>
    headers: dict[str, str]  # lower-case names; repeated fields joined by ", "

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def keep_alive(self) -> bool:
        return _keep_alive(self.minor_version, self.headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    status: int
    minor_version: int
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        return _keep_alive(self.minor_version, self.headers)


def parse_request_head(raw: bytes) -> RequestHead:
    """The head of a request, without its final blank line."""
    start, headers = _split_head(raw)
    match = _REQUEST_LINE.fullmatch(start)
    if match is None:
        raise HTTPMessageError(f"not an HTTP/1.x request line: {start[:60]!r}")
    method, target, minor = match.groups()
    return RequestHead(method=method.decode("ascii"), target=target.decode("latin-1"), minor_version=int(minor),
                       headers=headers)


def parse_response_head(raw: bytes) -> ResponseHead:
    """The head of a response, without its final blank line."""
    start, headers = _split_head(raw)
    match = _STATUS_LINE.fullmatch(start)
    if match is None:
        raise HTTPMessageError(f"not an HTTP/1.x status line: {start[:60]!r}")
    return ResponseHead(status=int(match.group(2)), minor_version=int(match.group(1)), headers=headers)


def request_framing(head: RequestHead) -> Framing:
    """A request's body: Content-Length or chunked, or none (a request never ends its body by closing)."""
    return _framing(head.headers) or NO_BODY


def response_framing(head: ResponseHead, *, method: str) -> Framing:
    """A response's body (RFC 9112 §6.3): none for HEAD, 1xx, 204 and 304, else as its headers say, else
    until the server closes."""
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return NO_BODY
    return _framing(head.headers) or Framing("close")


def parse_chunk_size(line: bytes) -> int:
    """The size of the chunk a chunk-size line (without its CRLF) starts; 0 is the last chunk."""
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise HTTPMessageError(f"invalid chunk size line {line[:40]!r}")
    return int(match.group(1), 16)


def encode_request(method: str, authority: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """A request with a Content-Length body (none for a GET without one). A Host in `headers` (a signed request
    carries one) is sent as given; framing headers there are left out, as the body is framed here."""
    names = {name.lower() for name in headers}
    lines = [f"{method} {target} HTTP/1.1"] + ([] if "host" in names else [f"host: {authority}"])
    lines += [f"{name}: {value}" for name, value in headers.items()
              if name.lower() not in ("content-length", "transfer-encoding")]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"content-length: {len(body)}")
    return _head(lines) + body


def encode_response(status: int, headers: Mapping[str, str], body: bytes, *, close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(body)}")
    if close:
        lines.append("connection: close")
    return _head(lines) + body


def _head(lines: list[str]) -> bytes:
    if any("\r" in line or "\n" in line for line in lines):
        raise HTTPMessageError("a header name or value holds a line break")  # header injection: never sent
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _split_head(raw: bytes) -> tuple[bytes, dict[str, str]]:
    start, *lines = raw.split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # also a folded line, which starts with white space
            raise HTTPMessageError(f"invalid header line {line[:60]!r}")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HTTPMessageError(f"invalid characters in header {name.decode('ascii')!r}")
        key, text = name.decode("ascii").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return start, headers


def _framing(headers: Mapping[str, str]) -> Framing | None:
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if length is not None:  # both: a message that could be read two ways (request smuggling)
            raise HTTPMessageError("both Transfer-Encoding and Content-Length")
        if coding.strip().lower() != "chunked":
            raise HTTPMessageError(f"unsupported transfer coding {coding!r}")
        return Framing("chunked")
    if length is None:
        return None
    values = {value.strip() for value in length.split(",")}  # repeats of one value are allowed (§6.3)
    if len(values) != 1 or not (value := values.pop()).isdigit() or len(value) > 15:
        raise HTTPMessageError(f"invalid Content-Length {length!r}")
    return Framing("length", int(value))


def _keep_alive(minor_version: int, headers: Mapping[str, str]) -> bool:
    options = {option.strip().lower() for option in headers.get("connection", "").split(",")}
    return "keep-alive" in options if minor_version == 0 else "close" not in options
