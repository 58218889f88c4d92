"""The fast start: its small HTTP, and the regression guard on what is imported before the first `next`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiohttp import web
from support import ROOT

from extension import bootstrap
from extension.bootstrap import encode_request, parse_response
from extension.config import DEFAULT_RECEIVER_PORT

# Modules the fast start may add to a bare interpreter (`python -E -S`) before the first `next` is sent:
# exactly what it needs today. Anything else (dataclasses, typing, asyncio, ssl, http.client, logging,
# aiohttp, opentelemetry, ...) belongs after it; widen this set only with a measurement in bench/README.md.
DECLARED = frozenset({
    "__future__", "_collections", "_collections_abc", "_functools", "_json", "_operator", "_socket", "_sre",
    "_stat", "array", "collections", "collections.abc", "copyreg", "encodings.idna", "enum", "errno",
    "extension", "extension.bootstrap", "extension.cli", "functools", "genericpath", "itertools", "json",
    "json.decoder", "json.encoder", "json.scanner", "keyword", "math", "operator", "os", "os.path", "posixpath",
    "re", "re._casefix", "re._compiler", "re._constants", "re._parser", "reprlib", "select", "selectors",
    "socket", "stat", "stringprep", "types", "unicodedata",
})


def test_request_encoding() -> None:
    raw = encode_request(
        "PUT", "127.0.0.1:9001", "/2022-07-01/telemetry", {"Lambda-Extension-Identifier": "x"}, b'{"a":1}'
    )
    head, body = raw.split(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"PUT /2022-07-01/telemetry HTTP/1.1"
    assert b"Connection: close" in head and b"Content-Length: 7" in head and body == b'{"a":1}'


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", b"hello"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\n\r\n", b"hello"),
        (b"HTTP/1.0 200 OK\r\n\r\nto the close", b"to the close"),
    ],
)
def test_response_bodies(raw: bytes, body: bytes) -> None:
    response = parse_response(raw)
    assert response.status == 200 and response.body == body


def test_headers_are_lower_case_and_json_is_lenient() -> None:
    response = parse_response(b"HTTP/1.1 403 Forbidden\r\nLambda-Extension-Identifier: abc\r\n\r\nnot json")
    assert response.status == 403 and response.headers["lambda-extension-identifier"] == "abc"
    assert response.json() is None


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 3", b"SSH-2.0-OpenSSH\r\n\r\n"])
def test_garbage_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_response(raw)


async def test_only_the_declared_modules_are_loaded_before_the_first_next(tmp_path: Path) -> None:
    """Lambda counts the extension ready at its first `next`: nothing heavy may be imported before it."""
    received: list[str] = []

    async def register(request: web.Request) -> web.Response:
        return web.json_response({"functionName": "f"}, headers={"Lambda-Extension-Identifier": "id-1"})

    async def subscribe(request: web.Request) -> web.Response:
        return web.json_response("OK")

    async def next_event(request: web.Request) -> web.Response:
        received.append(request.headers["Lambda-Extension-Identifier"])
        return web.json_response({"eventType": "SHUTDOWN", "deadlineMs": 0})

    app = web.Application()
    app.router.add_post("/2020-01-01/extension/register", register)
    app.router.add_put("/2022-07-01/telemetry", subscribe)
    app.router.add_get("/2020-01-01/extension/event/next", next_event)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    probe = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        before = set(sys.modules)
        import extension.cli  # what cli.main has loaded when it starts
        from extension import bootstrap
        env = {{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:{site.port}", "OTEL_LAMBDA_LISTENER_PORT": "0"}}
        types, host, port = bootstrap.listen_settings(env)
        started = bootstrap.start(env["AWS_LAMBDA_RUNTIME_API"], "otel-extension", types=types,
                                  host="127.0.0.1", port=port)
        added = sorted(set(sys.modules) - before)
        import json
        print(json.dumps({{"added": added, "ok": started.subscribed}}))
    """)
    try:
        # The same flags as the layer's launcher: no site-packages, no PYTHON* variables.
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-E", "-S", "-c", probe, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await done.communicate()
    finally:
        await runner.cleanup()
    assert done.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["ok"]
    assert set(result["added"]) <= DECLARED, " ".join(sorted(set(result["added"]) - DECLARED))
    assert "asyncio" not in result["added"] and "ssl" not in result["added"]


def test_the_receiver_port_is_read_as_the_settings_read_it() -> None:
    assert bootstrap.DEFAULT_RECEIVER_PORT == DEFAULT_RECEIVER_PORT
    assert bootstrap.receiver_port({}) == DEFAULT_RECEIVER_PORT
    assert bootstrap.receiver_port({"OTEL_LAMBDA_RECEIVER_PORT": "off"}) is None
    assert bootstrap.receiver_port({"OTEL_LAMBDA_RECEIVER_PORT": "0"}) is None
    assert bootstrap.receiver_port({"OTEL_LAMBDA_RECEIVER_PORT": "00"}) is None  # as the settings read it
    assert bootstrap.receiver_port({"OTEL_LAMBDA_RECEIVER_PORT": "4400"}) == 4400
    # A bad value: the strict settings report it and the extension stays in pass-through.
    assert bootstrap.receiver_port({"OTEL_LAMBDA_RECEIVER_PORT": "many"}) == DEFAULT_RECEIVER_PORT


# What the extension must not load at start, with the default settings: libraries it has replaced (the SDK and
# its encoders, aiohttp, structlog, botocore), and protobuf's JSON support, which only OTLP/JSON needs. Each would
# cost every cold start imports and memory for nothing.
NOT_AT_START = ("aiohttp", "opentelemetry.sdk", "opentelemetry.exporter", "structlog", "botocore",
                "google.protobuf.json_format")


def test_the_imports_after_the_first_next_leave_out_what_the_extension_does_not_use() -> None:
    probe = textwrap.dedent("""
        import json, sys
        from extension import app, cli, config, log  # what cli.main imports after the first `next`
        print(json.dumps(sorted(sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-E", "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert [name for name in loaded if name.startswith(NOT_AT_START)] == []
