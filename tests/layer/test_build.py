"""The layer zips: layout, bytecode, the lock, the version stamps, the size budget and byte-for-byte reproducibility."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from support import ROOT


def names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as opened:
        return opened.namelist()


def test_every_supported_runtime_and_architecture_is_a_variant(layer_build: ModuleType) -> None:
    variants = {(v.runtime, v.architecture) for v in layer_build.VARIANTS}
    assert variants == {(f"python3.{minor}", arch) for minor in (11, 12, 13, 14) for arch in ("x86_64", "arm64")}
    assert {v.name for v in layer_build.VARIANTS} == {f"otel-extension-{r}-{a}" for r, a in variants}
    # python3.11 runs on Amazon Linux 2 (glibc 2.26); later runtimes on AL2023 (glibc 2.34).
    for variant in layer_build.VARIANTS:
        newest = variant.pip_target()[-1]
        assert newest == f"manylinux_2_{26 if variant.python == '3.11' else 34}_{variant.machine}"


def test_the_layout_keeps_our_packages_out_of_the_functions_path(layer_build: ModuleType, host_zip: Any) -> None:
    variant = host_zip.variant
    entries = names(host_zip.zip_path)
    lib = f"otel-extension/{variant.runtime}/"
    assert "extensions/otel-extension" in entries
    assert {"otel-extension/main.py", "otel-extension/no-python.sh", "otel-extension/layer.json"} <= set(entries)
    assert all(e.startswith(("extensions/", "otel-extension/")) for e in entries)  # nothing in /opt/python
    assert f"{lib}extension/cli.py" in entries and f"{lib}google/protobuf/__init__.py" in entries
    assert not [e for e in entries if e.startswith(f"{lib}bin/")]
    with zipfile.ZipFile(host_zip.zip_path) as opened:
        assert (opened.getinfo("extensions/otel-extension").external_attr >> 16) & 0o777 == 0o755
        # The exec wrapper, beside the extension and executable; not in extensions/, which Lambda starts.
        assert (opened.getinfo("otel-extension/otel-wrapper").external_attr >> 16) & 0o777 == 0o755
        assert [e for e in entries if e.startswith("extensions/")] == ["extensions/otel-extension"]
        stamp = json.loads(opened.read("otel-extension/layer.json"))
    assert stamp == {"name": "otel-extension", "version": layer_build.version(), "runtime": variant.runtime,
                     "architecture": variant.architecture}


def test_bytecode_for_the_target_python_ships_for_every_module(host_zip: Any) -> None:
    entries = set(names(host_zip.zip_path))
    tag = "cpython-" + host_zip.variant.python.replace(".", "")
    sources = [e for e in entries if e.endswith(".py") and "/python3." in e]
    missing = [s for s in sources
               if f"{s.rsplit('/', 1)[0]}/__pycache__/{s.rsplit('/', 1)[1][:-3]}.{tag}.pyc" not in entries]
    assert sources and not missing
    assert not [e for e in entries if e.endswith(".pyc") and f".{tag}." not in e]


def test_the_same_inputs_give_the_same_zip_bytes(layer_build: ModuleType, host_zip: Any, tmp_path: Path) -> None:
    again = layer_build.build_zip(host_zip.variant, tmp_path)
    assert again.zip_path.read_bytes() == host_zip.zip_path.read_bytes()
    with zipfile.ZipFile(again.zip_path) as opened:
        assert {entry.date_time for entry in opened.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_the_build_stays_within_the_size_budget(layer_build: ModuleType, host_zip: Any) -> None:
    assert host_zip.problems() == []
    assert host_zip.zipped_bytes < 10 * 2**20 and host_zip.unzipped_bytes < 30 * 2**20
    too_big = layer_build.Built(variant=host_zip.variant, zip_path=host_zip.zip_path, sha256=host_zip.sha256,
                                zipped_bytes=11 * 2**20, unzipped_bytes=31 * 2**20)
    assert len(too_big.problems()) == 2


def test_the_lock_pins_every_wheel_of_pyprojects_dependencies(layer_build: ModuleType) -> None:
    locked = layer_build.locked_versions()
    for requirement in layer_build.direct_dependencies():
        name, version = requirement.split("==")
        assert locked[re.sub(r"[-_.]+", "-", name).lower()] == version
    text = layer_build.LOCK.read_text()
    # Every pin carries hashes (pip's --require-hashes enforces it at build time too).
    assert text.count("==") == len(locked) and text.count("--hash=sha256:") >= len(locked)


def test_the_version_lives_in_one_place_and_is_stamped_everywhere(layer_build: ModuleType) -> None:
    from extension import __version__

    assert layer_build.version() == __version__
    assert layer_build.version_stamps() == dict.fromkeys(("pyproject.toml", "CHANGELOG.md", "template.yaml"),
                                                         __version__)
    layer_build.check_version_stamps()
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
