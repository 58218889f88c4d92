"""Layers of scripted test extensions: `extensions/scripted_extension.py` under the names a test gives, each
driven by `<layer>/<name>.json`, and the answers they logged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).parent / "extensions" / "scripted_extension.py"
FUNCTIONS = Path(__file__).parent / "functions"


def scripted_layer(root: Path, extensions: dict[str, dict[str, Any]]) -> Path:
    layer = root / "layer"
    (layer / "extensions").mkdir(parents=True, exist_ok=True)
    for name, config in extensions.items():
        target = layer / "extensions" / name
        shutil.copyfile(SCRIPT, target)
        target.chmod(0o755)
        (layer / f"{name}.json").write_text(json.dumps(config))
    return layer


def answers(log: list[dict[str, Any]]) -> dict[str, tuple[int, Any]]:
    """Each API answer a scripted extension logged, by label: (HTTP status, JSON body)."""
    return {entry["label"]: (entry["status"], entry["body"]) for entry in log if entry["kind"] == "answer"}
