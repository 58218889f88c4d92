"""Child processes of the execution environment: launch in a private view of /opt, capture output, signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LineSink = Callable[[str], None]
MAX_LINE_BYTES = 256 * 1024

# Runs as root in a private mount namespace: the layer appears read-only at /opt and a hosts
# file that maps sandbox.localdomain to loopback replaces /etc/hosts, for this process only.
_ISOLATE = (
    'set -e; [ -n "$1" ] && mount --bind -o ro "$1" /opt; mount --bind -o ro "$2" /etc/hosts; '
    'shift 2; exec "$@"'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """How a process sees the machine: the layer at /opt and the sandbox's hosts file."""

    layer_dir: Path | None
    hosts_file: Path
    isolated: bool

    def wrap(self, argv: Sequence[str]) -> list[str]:
        if not self.isolated:
            return list(argv)
        layer = str(self.layer_dir) if self.layer_dir else ""
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _ISOLATE,
                "isolate", layer, str(self.hosts_file), *argv]


def launch_problem(file: Path, layer_dir: Path | None) -> str | None:
    """Why exec(2) would refuse `file`, as platform.extension's errorType (PermissionDenied, UnknownError), or None.

    The isolated launch goes through a shell, which reports a failed exec only as an exit status that a crashing
    extension could give too; so the sandbox applies exec's rules itself: the file is executable, and it is an
    ELF binary or a `#!` script whose interpreter (seen as the process sees /opt) exists and is executable.
    exec never falls back to a shell for a file that is neither."""
    if not os.access(file, os.X_OK):
        return "PermissionDenied"
    try:
        with file.open("rb") as stream:
            head = stream.read(256)
    except OSError:
        return "PermissionDenied"
    if head.startswith(b"\x7fELF"):
        return None
    words = head[2:].split(b"\n", 1)[0].split() if head.startswith(b"#!") else []
    if not words:
        return "UnknownError"  # ENOEXEC
    interpreter = Path(words[0].decode("utf-8", "replace"))
    if layer_dir is not None and interpreter.is_relative_to("/opt"):
        interpreter = layer_dir / interpreter.relative_to("/opt")
    if not interpreter.is_file():
        return "UnknownError"  # ENOENT: a bad shebang
    if not os.access(interpreter, os.X_OK):
        return "PermissionDenied"
    return None


def can_isolate() -> bool:
    """Private mount namespaces need root (CAP_SYS_ADMIN), `unshare` and an /opt to mount over."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not Path("/opt").is_dir():
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


class Process:
    """One child in its own process group, so that freeze, thaw and kill reach all its descendants."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started_at: float | None = None
        self.exited_at: float | None = None
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    async def start(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, on_line: LineSink) -> None:
        self.started_at = time.monotonic()
        self._proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, limit=MAX_LINE_BYTES)
        assert self._proc.stdout is not None
        self._reader = asyncio.create_task(_read_lines(self._proc.stdout, on_line), name=f"{self.name}-output")

    async def wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self.exited_at is None:
            self.exited_at = time.monotonic()
            self.returncode = code
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        return code

    def signal(self, signum: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    async def stopped(self, timeout_s: float = 1.0) -> bool:
        """Wait until the kernel reports the stop: SIGSTOP is delivered asynchronously."""
        deadline = time.monotonic() + timeout_s
        while self.running and self.pid is not None:
            if _state(self.pid) in ("T", "t", "Z", "X", None):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    async def close(self) -> None:
        """Kill what is left of the group and stop reading its output."""
        self.signal(signal.SIGKILL)
        if self._proc is not None and self.returncode is None:
            await self.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def _read_lines(stream: asyncio.StreamReader, on_line: LineSink) -> None:
    while True:
        try:
            chunk = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:
            chunk = end.partial
            if chunk:
                on_line(chunk.decode("utf-8", "replace"))
            return
        except asyncio.LimitOverrunError as overrun:
            # An over-long line is cut into records of at most MAX_LINE_BYTES, as a log pipe would.
            chunk = await stream.readexactly(overrun.consumed)
        on_line(chunk.decode("utf-8", "replace").removesuffix("\n"))


def _state(pid: int) -> str | None:
    """The process state letter from /proc (procfs reads never block); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def peak_memory_mb(processes: Sequence[Process]) -> int:
    """Sum of the processes' peak resident set (VmHWM), the closest local stand-in for maxMemoryUsedMB."""
    total_kb = 0
    for process in processes:
        if process.pid is None or not process.running:
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
    return max(1, -(-total_kb // 1024))
