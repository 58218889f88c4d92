"""Paths and small helpers shared by the tests."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from extension.events import TelemetryEvent
from extension.wire import parse_batch
from sandbox.settings import FunctionSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "functions"
TEST_FUNCTIONS = ROOT / "tests" / "functions"
MINIMAL_LAYER = ROOT / "tests" / "layers" / "minimal"
RUNTIME_DIR = ROOT / ".venv" / "lambda-runtime"
EVENTS = ROOT / "tests" / "extension" / "events"  # recorded Telemetry API batches
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SettingsFactory = Callable[..., FunctionSettings]


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines that a test extension or function wrote."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def telemetry_events(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every telemetry event the test extension received, in delivery order."""
    return [event for entry in log if entry["kind"] == "batch" for event in entry["events"]]


class SequentialIds:
    """Deterministic ids: trace ids 0xAAAA…01, 02, …; span ids 0xB000…01, 02, …"""

    def __init__(self) -> None:
        self._traces = itertools.count(1)
        self._spans = itertools.count(1)

    def generate_trace_id(self) -> int:
        return (0xAAAA << 112) + next(self._traces)

    def generate_span_id(self) -> int:
        return (0xB000 << 48) + next(self._spans)


def ns(iso: str) -> int:
    """Nanoseconds since the epoch, computed independently of the code under test (µs precision)."""
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(microseconds=1) * 1000


def events(name: str) -> list[TelemetryEvent]:
    """The events of a recorded batch under EVENTS, which must parse whole."""
    batch = parse_batch((EVENTS / name).read_bytes())
    assert batch.malformed == 0
    return batch.events


@dataclass
class Clock:
    """A monotonic clock that moves only when the test says so."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def load_script(name: str) -> ModuleType:
    """A script under layer/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"otel_layer_{name}", ROOT / "layer" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
