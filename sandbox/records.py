"""What the sandbox measured: per-phase records that the CLI prints and tests and benchmarks read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionInit:
    name: str
    state: str
    events: list[str]
    ready_ms: float | None
    """From the process start to its first `event/next` reaching the API."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitRecord:
    phase: str
    status: str
    error_type: str | None
    duration_ms: float
    extensions: list[ExtensionInit] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeRecord:
    request_id: str
    status: str
    error_type: str | None
    response: bytes | None
    cold_start: bool
    duration_ms: float
    """From the release of the invoke to the end of the phase (the runtime and every extension done)."""
    response_latency_ms: float | None
    """From the release of the invoke to the runtime's response reaching the API."""
    runtime_done_ms: float | None
    post_runtime_extension_ms: float
    """From the runtime's `next` to the last extension's `next` (PostRuntimeExtensionsDuration)."""

    def summary(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "status": self.status, "error_type": self.error_type,
                "cold_start": self.cold_start, "duration_ms": self.duration_ms,
                "response_latency_ms": self.response_latency_ms,
                "post_runtime_extension_ms": self.post_runtime_extension_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionExit:
    name: str
    exit_ms: float | None
    """From the start of shutdown to the process's exit; None if it never ran."""
    exited_before_deadline: bool
    killed: bool
    returncode: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRecord:
    reason: str
    deadline_ms: int
    runtime_exit_ms: float | None
    extensions: list[ExtensionExit]


def as_json(record: InitRecord | ShutdownRecord) -> dict[str, Any]:
    return asdict(record)
