"""Lay out the Lambda layer for this machine's Python: extensions/<name> plus <name>/ with the package,
its pinned dependencies and their bytecode (the layer is read-only at /opt, so Python cannot cache it)."""

from __future__ import annotations

import argparse
import compileall
import py_compile
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "otel-extension"


def dependencies() -> list[str]:
    """The pinned runtime dependencies, read from pyproject.toml: one list for the project and the layer."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def build(out: Path, python: str = sys.executable) -> Path:
    if out.exists():
        shutil.rmtree(out)
    home = out / NAME
    home.mkdir(parents=True)
    (out / "extensions").mkdir()
    launcher = out / "extensions" / NAME
    shutil.copy2(ROOT / "layer" / "extensions" / NAME, launcher)
    launcher.chmod(0o755)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    "--only-binary=:all:", "--target", str(home), *dependencies()], check=True)
    shutil.copytree(ROOT / "extension", home / "extension", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "layer" / "main.py", home / "main.py")
    for dropped in ("bin",):  # console scripts of the dependencies: never run inside Lambda
        shutil.rmtree(home / dropped, ignore_errors=True)
    # Hash-checked bytecode needs no source timestamps, so it stays valid wherever the zip is unpacked.
    compileall.compile_dir(home, quiet=1, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "layer")
    args = parser.parse_args()
    print(build(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
