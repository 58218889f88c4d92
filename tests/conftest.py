"""Shared fixtures: the sandbox's runtime directory and a factory for function settings."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, RUNTIME_DIR, TEST_FUNCTIONS, SettingsFactory

from sandbox.settings import FunctionSettings


@pytest.fixture(scope="session")
def runtime_dir() -> Path:
    """AWS's runtime interface client, installed as Lambda keeps it (`make venv` installs it too)."""
    if not (RUNTIME_DIR / "awslambdaric").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(RUNTIME_DIR),
                        "-r", str(ROOT / "sandbox" / "runtime-requirements.txt")], check=True)
    return RUNTIME_DIR


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-work")


@pytest.fixture
def make_settings(runtime_dir: Path) -> SettingsFactory:
    def make(**overrides: Any) -> FunctionSettings:
        fields: dict[str, Any] = {"function_dir": TEST_FUNCTIONS, "handler": "probe.handler",
                                  "runtime_dir": runtime_dir, "timeout_s": 3.0}
        fields.update(overrides)
        return FunctionSettings(**fields)
    return make



@pytest.fixture(scope="session")
def built_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer laid out for this machine's Python, exactly as `make layer-local` builds it."""
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "layer" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: Path = module.build(tmp_path_factory.mktemp("layer") / "opt")
    return built
