"""Arize Phoenix as a child process: on loopback, with a working directory of its own and its telemetry off,
ready once its health check answers (within a deadline), stopped within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

HOST: Final = "127.0.0.1"
# A first start creates the database and imports a large application: 25 to 35 s on two busy cores.
START_TIMEOUT_S: Final = 180.0
STOP_TIMEOUT_S: Final = 10.0
# A user's own Phoenix settings (a database URL, auth, collectors) must not reach this throwaway instance, nor
# OpenTelemetry settings meant for something else (Phoenix instruments itself when asked to).
_NOT_INHERITED: Final = ("PHOENIX_", "OTEL_")


class PhoenixError(RuntimeError):
    """Phoenix is missing, exited while starting or never became healthy; the message holds its log's tail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Phoenix:
    url: str
    working_dir: Path
    log_path: Path

    @property
    def traces_endpoint(self) -> str:
        """The OTLP/HTTP trace endpoint: traces are the one signal Phoenix accepts (logs and metrics get 405)."""
        return f"{self.url}/v1/traces"


def phoenix_env(inherited: Mapping[str, str], *, working_dir: Path, port: int, grpc_port: int) -> dict[str, str]:
    """Phoenix's environment: the caller's, without Phoenix and OpenTelemetry settings, plus ours."""
    env = {key: value for key, value in inherited.items() if not key.startswith(_NOT_INHERITED)}
    env.update({
        "PHOENIX_HOST": HOST,
        "PHOENIX_PORT": str(port),
        # Phoenix always serves OTLP/gRPC too, by default on 4317: a free port keeps it off anyone else's.
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(working_dir),  # its SQLite database
        "PHOENIX_TELEMETRY_ENABLED": "false",
        # No web fonts, pixels or downloads from the public internet, by the server or by the pages it serves.
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        # What a trace viewer does not need: the LLM assistant with its server-side tools, and the MCP endpoint.
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_ENABLE_MCP_SERVER": "false",
        "PHOENIX_LOG_MIGRATIONS": "false",  # else a fresh database logs every CREATE TABLE
    })
    return env


def free_port(port: int = 0) -> int:
    """`port` if nobody listens on it now, 0 for any such port; Phoenix binds it a moment later.

    Checked first because a server already on the port would answer our health check in Phoenix's place.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed port in TIME_WAIT is free
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise PhoenixError(f"port {port} on {HOST} is taken: {exc.strerror}") from exc
        bound: int = sock.getsockname()[1]
        return bound


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def running_phoenix(executable: Path, working_dir: Path, *, port: int = 0,
                          start_timeout_s: float = START_TIMEOUT_S,
                          stop_timeout_s: float = STOP_TIMEOUT_S) -> AsyncIterator[Phoenix]:
    """`phoenix serve` on `port` (0: a free one), yielded once healthy; stopped on exit, whatever happened."""
    executable = executable.absolute()  # Phoenix runs in its working directory
    if not executable.exists():
        raise PhoenixError(f"no Phoenix at {executable}; `make phoenix-venv` installs it")
    working_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    phoenix = Phoenix(url=f"http://{HOST}:{port}", working_dir=working_dir, log_path=working_dir / "phoenix.log")
    env = phoenix_env(os.environ, working_dir=working_dir, port=port, grpc_port=free_port())
    log = os.open(phoenix.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        # A session of its own: a Ctrl-C at the terminal reaches only us, and we stop Phoenix in order; its
        # process group is ours to signal.
        process = await asyncio.create_subprocess_exec(
            str(executable), "serve", stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=working_dir, start_new_session=True)
    finally:
        os.close(log)
    try:
        await _until_healthy(phoenix, process, start_timeout_s)
        yield phoenix
    finally:
        await _stop(process, stop_timeout_s)


async def _until_healthy(phoenix: Phoenix, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{phoenix.url}/healthz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() >= deadline:
                raise PhoenixError(f"Phoenix not healthy after {timeout_s:.0f} s:\n{log_tail(phoenix.log_path)}")
            await asyncio.sleep(0.25)
    raise PhoenixError(f"Phoenix exited ({process.returncode}) while starting:\n{log_tail(phoenix.log_path)}")


async def _stop(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM to Phoenix's process group (uvicorn shuts down gracefully), SIGKILL when it is not gone in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout_s)
            return
