"""`LocalLambda`: the whole local execution environment behind one async context manager."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web

from sandbox.api import make_app
from sandbox.environment import Environment
from sandbox.processes import View, can_isolate
from sandbox.records import InitRecord, InvokeRecord, ShutdownRecord
from sandbox.settings import FunctionSettings
from sandbox.telemetry import TelemetryHub

HOSTS = "127.0.0.1\tlocalhost\n127.0.0.1\tsandbox.localdomain sandbox\n::1\tlocalhost ip6-localhost\n"
DEFAULT_WORK_DIR = Path(".sandbox")


def stdlib_python(work_dir: Path) -> Path:
    """An interpreter with nothing but the standard library, like a Lambda Python runtime's `python3`."""
    venv = work_dir / f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = venv / "bin" / "python3"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return python


def print_output(source: str, line: str) -> None:
    """Echo a process's output line to the sandbox's stderr, tagged with the process."""
    print(f"[{source}] {line}", file=sys.stderr, flush=True)


class LocalLambda:
    """Init on enter, `invoke()` as often as wanted, SHUTDOWN on exit (or explicitly, to read its record)."""

    def __init__(self, settings: FunctionSettings, *, work_dir: Path = DEFAULT_WORK_DIR, api_port: int = 0,
                 isolate: bool | None = None, on_output: Callable[[str, str], None] = print_output) -> None:
        self.settings = settings
        self.work_dir = work_dir.resolve()
        self.api_port = api_port
        self.isolate = can_isolate() if isolate is None else isolate
        self.on_output = on_output
        self.init_record: InitRecord | None = None
        self.invocations: list[InvokeRecord] = []
        self.shutdown_record: ShutdownRecord | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._environment: Environment | None = None

    @property
    def environment(self) -> Environment:
        assert self._environment is not None, "use LocalLambda as an async context manager"
        return self._environment

    @property
    def hub(self) -> TelemetryHub:
        return self.environment.hub

    async def __aenter__(self) -> LocalLambda:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        hosts = self.work_dir / "hosts"
        hosts.write_text(HOSTS)
        python = stdlib_python(self.work_dir)
        view = View(layer_dir=self.settings.layer_dir.resolve() if self.settings.layer_dir else None,
                    hosts_file=hosts, isolated=self.isolate)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=1.0))
        hub = TelemetryHub(self._session)
        # The environment needs the bound address before the app exists: bind the socket first.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.api_port))
        runtime_api = f"127.0.0.1:{sock.getsockname()[1]}"
        self._environment = Environment(self.settings, hub, view, runtime_api, python, self.on_output)
        self._runner = web.AppRunner(make_app(self._environment), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        try:
            self.init_record = await self._environment.init()
        except BaseException:
            await self._close()
            raise
        return self

    async def invoke(self, payload: bytes = b"{}", *, trace_header: str | None = None) -> InvokeRecord:
        record = await self.environment.invoke(payload, trace_header=trace_header)
        self.invocations.append(record)
        return record

    async def shutdown(self, reason: str = "spindown") -> ShutdownRecord:
        if self.shutdown_record is None:
            self.shutdown_record = await self.environment.shutdown(reason)
        return self.shutdown_record

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.shutdown()
        finally:
            await self._close()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
