"""The layer's build script as a module, and this machine's variant built as the zip that ships."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import load_script


@pytest.fixture(scope="session")
def layer_build() -> ModuleType:
    return load_script("build")


@pytest.fixture(scope="session")
def host_zip(layer_build: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """This machine's variant, built exactly as `make layer` builds every variant (`Built`)."""
    return layer_build.build_zip(layer_build.host_variant(), tmp_path_factory.mktemp("dist"))


def unpack(archive: Path, opt: Path) -> Path:
    """Unzip as Lambda does into a directory laid out like /opt, keeping the modes the zip records."""
    with zipfile.ZipFile(archive) as opened:
        for entry in opened.infolist():
            opened.extract(entry, opt)
            os.chmod(opt / entry.filename, (entry.external_attr >> 16) & 0o777)
    return opt
