"""Paths and small helpers shared by the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.settings import FunctionSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "functions"
TEST_FUNCTIONS = ROOT / "tests" / "functions"
MINIMAL_LAYER = ROOT / "tests" / "layers" / "minimal"
RUNTIME_DIR = ROOT / ".venv" / "lambda-runtime"

SettingsFactory = Callable[..., FunctionSettings]


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines that a test extension or function wrote."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def telemetry_events(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every telemetry event the test extension received, in delivery order."""
    return [event for entry in log if entry["kind"] == "batch" for event in entry["events"]]
