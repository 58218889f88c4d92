"""The fast start: register, bind the listener, subscribe and send the first `next` with the standard
library alone, before anything heavy is imported.

Lambda counts an extension ready when its `event/next` request arrives, not when the answer is read,
and the kernel queues connections to a listening socket before any server code runs. So the first
`next` goes out on a plain socket here, and the event loop reads its answer later, once asyncio and the
rest of the extension are imported (ExtensionsAPI reads it). Nothing here may import more than the standard
library, and as little of it as it can (no dataclasses, typing or base64: they cost milliseconds of the
function's cold start); a regression test holds the modules loaded at that moment to a declared set.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence

EXTENSION_API = "/2020-01-01/extension"
TELEMETRY_API = "/2022-07-01/telemetry"
SCHEMA_VERSION = "2022-12-13"  # the first with JSON-object log records
_OFF = "none"
MAX_RESPONSE_BYTES = 1 << 20


class BootstrapError(Exception):
    """The Extensions API refused or could not be reached; `status` is 0 when nothing answered."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, *, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # names in lower case
        self.body = body

    def json(self) -> object:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class Started:
    """What the fast start leaves for the event loop."""

    __slots__ = ("extension_id", "function_name", "listener", "listener_path", "pending_next", "receiver",
                 "subscribe_problem", "subscribed")

    def __init__(self, *, extension_id: str, function_name: str | None, listener: socket.socket | None,
                 listener_path: str, subscribed: bool, subscribe_problem: str | None,
                 pending_next: socket.socket, receiver: socket.socket | None = None) -> None:
        self.extension_id = extension_id
        self.function_name = function_name
        self.listener = listener
        self.listener_path = listener_path
        self.subscribed = subscribed
        self.subscribe_problem = subscribe_problem
        self.pending_next = pending_next
        self.receiver = receiver
        """The in-function receiver's socket, listening already: a function that exports during its own init
        finds it there (its connections wait in the kernel's queue until the server runs)."""


# config.DEFAULT_RECEIVER_PORT; config is not imported here, to keep what loads before the first `next` small.
RECEIVER_HOST = "127.0.0.1"
DEFAULT_RECEIVER_PORT = 4318


def receiver_port(env: Mapping[str, str]) -> int | None:
    """The in-function receiver's port, read leniently (None: off). A bad value keeps the default here; the
    strict settings then report it and the extension stays in pass-through mode, closing the socket."""
    text = env.get("OTEL_LAMBDA_RECEIVER_PORT", "").strip().lower()
    if text == "off" or (text.isdigit() and int(text) == 0):
        return None
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else DEFAULT_RECEIVER_PORT


def listen_settings(env: Mapping[str, str]) -> tuple[tuple[str, ...], str, int]:
    """What to subscribe to (nothing: no subscription), and where to listen, read leniently from the few
    variables that decide it.

    The full settings are parsed strictly once `next` is out; if they turn out invalid, the extension
    drops what this listener receives and stays in pass-through mode.
    """
    def exported(signal: str) -> bool:
        return env.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() != _OFF

    types: tuple[str, ...] = ()
    if exported("TRACES") or exported("METRICS") or exported("LOGS"):
        types = ("platform",)  # the spans, the platform metrics, and which invocation a log line belongs to
    if exported("LOGS"):
        types += ("function",)
        if env.get("OTEL_LAMBDA_EXTENSION_LOGS", "").strip().lower() in ("true", "1"):
            types += ("extension",)
    local = env.get("AWS_SAM_LOCAL", "").strip().lower() in ("true", "1")
    port = env.get("OTEL_LAMBDA_LISTENER_PORT", "").strip()
    # `sam local` has no sandbox.localdomain; its container publishes only the runtime API's port, and the
    # listener's path is unguessable.
    host = "0.0.0.0" if local else "sandbox.localdomain"  # noqa: S104 -- under `sam local` only, see above
    return types, host, int(port) if port.isdigit() and int(port) <= 65535 else 0


# ---- the smallest HTTP/1.1 this needs: one request per connection, `Connection: close` ------------

def encode_request(method: str, host: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse_response(raw: bytes) -> Response:
    """A complete response read up to the server's close: status, headers, and the body (length-delimited,
    chunked, or up to the close). ValueError when it is not HTTP."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("the response ended before its headers did")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, status_and_reason = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not status_and_reason[:3].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(rest)
    elif "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    else:
        body = rest
    return Response(status=int(status_and_reason[:3]), headers=headers, body=body)


def _dechunk(data: bytes) -> bytes:
    body, position = bytearray(), 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += data[line_end + 2 : line_end + 2 + size]
        position = line_end + 2 + size + 2


def read_to_close(sock: socket.socket) -> bytes:
    chunks, total = [], 0
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise ValueError("response too large")
    return b"".join(chunks)


def _address(runtime_api: str) -> tuple[str, int]:
    host, _, port = runtime_api.rpartition(":")
    return host, int(port)


def _call(runtime_api: str, method: str, path: str, headers: dict[str, str], payload: object) -> Response:
    body = json.dumps(payload).encode() if payload is not None else None
    try:
        with socket.create_connection(_address(runtime_api)) as sock:
            sock.sendall(encode_request(method, runtime_api, path, headers, body))
            return parse_response(read_to_close(sock))
    except (OSError, ValueError) as error:
        raise BootstrapError(0, f"{method} {path}: {type(error).__name__}: {error}") from error


def _error_text(response: Response) -> str:
    body = response.json()
    if isinstance(body, dict):
        return f"HTTP {response.status} {body.get('errorType', '')}: {body.get('errorMessage', '')}"
    return f"HTTP {response.status}"


# ---- the steps ------------------------------------------------------------------------------------

def register(runtime_api: str, name: str) -> tuple[str, str | None]:
    response = _call(runtime_api, "POST", f"{EXTENSION_API}/register", {"Lambda-Extension-Name": name},
                     {"events": ["INVOKE", "SHUTDOWN"]})
    identifier = response.headers.get("lambda-extension-identifier", "")
    if response.status != 200 or not identifier:
        raise BootstrapError(response.status, f"register: {_error_text(response)}")
    info = response.json()
    return identifier, info.get("functionName") if isinstance(info, dict) else None


def bind_listener(host: str, port: int) -> socket.socket:
    """Listening at once: the platform's deliveries wait in the kernel's queue until the server runs."""
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def secret_path() -> str:
    """An unguessable path, so only whoever was told the subscribed URI (the platform) can deliver."""
    return "/" + os.urandom(18).hex()


def subscribe(runtime_api: str, extension_id: str, uri: str, types: Sequence[str]) -> bool:
    """True when subscribed; False when the platform has no Telemetry API (local emulators: 202/404)."""
    # Lambda drops records (never platform events) while a batch is in flight and the next is full: with the
    # function's lines subscribed, the documented maxima let a burst wait on its side instead of being lost.
    records = "function" in types or "extension" in types
    buffering = {"maxItems": 10_000 if records else 1000, "maxBytes": 1_048_576 if records else 262_144,
                 "timeoutMs": 25}
    subscription = {"schemaVersion": SCHEMA_VERSION, "types": list(types), "buffering": buffering,
                    "destination": {"protocol": "HTTP", "URI": uri}}
    response = _call(runtime_api, "PUT", TELEMETRY_API, {"Lambda-Extension-Identifier": extension_id},
                     subscription)
    if response.status in (202, 404):
        return False
    if not 200 <= response.status < 300:
        raise BootstrapError(response.status, f"subscribe: {_error_text(response)}")
    return True


def send_next(runtime_api: str, extension_id: str) -> socket.socket:
    """Send `event/next` and return the socket unread: its answer may come much later, so no timeout."""
    try:
        sock = socket.create_connection(_address(runtime_api))
        sock.sendall(encode_request("GET", runtime_api, f"{EXTENSION_API}/event/next",
                                    {"Lambda-Extension-Identifier": extension_id}, None))
    except OSError as error:
        raise BootstrapError(0, f"next: {type(error).__name__}: {error}") from error
    return sock


def start(runtime_api: str, name: str, *, types: Sequence[str], host: str, port: int,
          receiver_port: int | None = None) -> Started:
    """Register, and (when there are telemetry `types`) bind and subscribe to them; then send the first `next`.

    A listener or subscription problem is kept for the event loop to report: the extension then runs
    without telemetry rather than failing the function's init.
    """
    extension_id, function_name = register(runtime_api, name)
    listener, path, subscribed, problem = None, secret_path(), False, None
    if types:
        try:
            listener = bind_listener(host, port)
            bound_port = listener.getsockname()[1]
            subscribed = subscribe(runtime_api, extension_id, f"http://sandbox.localdomain:{bound_port}{path}", types)
        except (OSError, BootstrapError) as error:
            problem = str(error)
    receiver = _bind_receiver(receiver_port)
    return Started(extension_id=extension_id, function_name=function_name, listener=listener, listener_path=path,
                   subscribed=subscribed, subscribe_problem=problem,
                   pending_next=send_next(runtime_api, extension_id), receiver=receiver)


def _bind_receiver(port: int | None) -> socket.socket | None:
    if port is None:
        return None
    try:
        return bind_listener(RECEIVER_HOST, port)
    except OSError:
        return None  # taken: the receiver tries once more when it starts, and says so there
