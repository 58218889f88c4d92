"""Build the Lambda layer: one reproducible zip per supported Python runtime and architecture in dist/, or the
layer for this machine unpacked (build/layer), from the locked wheels, with each target Python's bytecode.

Layout (the zip unpacks to /opt): extensions/<name> is the launcher; <name>/main.py picks <name>/python3.X/, which
holds the package, its dependencies and their bytecode; <name>/otel-wrapper is the function's exec wrapper. Nothing
goes to /opt/python, so the function never imports our dependencies and its own packages never shadow ours."""

# No `from __future__ import annotations`: the tests load this file without registering it as a module, and
# dataclasses cannot resolve string annotations then.
import argparse
import ast
import compileall
import functools
import hashlib
import json
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layer"
LOCK = LAYER / "requirements.lock"
BYTECODE = LAYER / "bytecode"
NAME = "otel-extension"
RUNTIME_HOME = f"/opt/{NAME}"
# The internal companion: AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-extension/otel-wrapper points the function's own
# OpenTelemetry SDK at the extension's receiver. Beside the extension, not in extensions/ (Lambda would start it).
WRAPPER = "otel-wrapper"

MAX_ZIPPED_BYTES = 10 * 1024 * 1024
MAX_UNZIPPED_BYTES = 30 * 1024 * 1024
# The zip's fixed timestamp: the earliest a zip can hold, so the bytes never depend on when or where it was built.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One layer zip: a Lambda Python runtime on one architecture."""

    python: str
    architecture: str
    max_glibc_minor: int
    """The newest manylinux_2_x the runtime's OS runs: Amazon Linux 2 (python3.11) has glibc 2.26, AL2023 2.34."""

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def name(self) -> str:
        return f"{NAME}-{self.runtime}-{self.architecture}"

    @property
    def machine(self) -> str:
        return {"x86_64": "x86_64", "arm64": "aarch64"}[self.architecture]

    def pip_target(self) -> list[str]:
        """pip's arguments that select this runtime's wheels, whatever machine runs the build."""
        platforms = [f"manylinux2014_{self.machine}"]
        platforms += [f"manylinux_2_{minor}_{self.machine}" for minor in range(17, self.max_glibc_minor + 1)]
        return ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python,
                *(arg for tag in platforms for arg in ("--platform", tag))]


# Every Lambda Python runtime that our code (3.11+: TaskGroup, asyncio.timeout_at) and every pinned wheel support.
# 3.10 and older lack the language features; 3.15 has no orjson wheel and no released Pyodide compiler yet.
VARIANTS = tuple(Variant(python=python, architecture=architecture, max_glibc_minor=26 if python == "3.11" else 34)
                 for python in ("3.11", "3.12", "3.13", "3.14") for architecture in ("x86_64", "arm64"))


def host_variant() -> Variant:
    """The variant this machine's Python runs, for the local sandbox."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    architecture = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    for variant in VARIANTS:
        if (variant.python, variant.architecture) == (python, architecture):
            return variant
    raise SystemExit(f"no layer variant for Python {python} on {platform.machine()}")


def version() -> str:
    """The one version: `extension.__version__`, read without importing the package."""
    tree = ast.parse((ROOT / "extension" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__version__"
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise SystemExit("extension/__init__.py has no __version__")


def version_stamps() -> dict[str, str]:
    """Where else the version is written; each must equal `version()`."""
    changelog = re.search(r"^## \[?(\d[^\]\s]*)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    template = re.search(r"^\s+Version: \"?([^\"\s]+)", (ROOT / "template.yaml").read_text(), re.MULTILINE)
    return {
        "pyproject.toml": tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"],
        "CHANGELOG.md": changelog.group(1) if changelog else "",
        "template.yaml": template.group(1) if template else "",
    }


def check_version_stamps() -> None:
    wrong = {where: found for where, found in version_stamps().items() if found != version()}
    if wrong:
        raise SystemExit(f"version {version()} (extension/__init__.py) differs from {wrong}")


def direct_dependencies() -> list[str]:
    """What ships in the layer, pinned in pyproject.toml: the lock is resolved from exactly these."""
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def lock(path: Path = LOCK) -> Path:
    """Resolve the dependencies for every variant and pin each wheel by hash: the same lock, the same layer bytes."""
    versions: dict[str, str] = {}
    hashes: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in VARIANTS:
            dest = Path(scratch) / variant.name
            pip("download", "--quiet", "--dest", str(dest), *variant.pip_target(), *direct_dependencies())
            resolved = {}
            for wheel in sorted(dest.glob("*.whl")):
                name, wheel_version = wheel.name.split("-")[:2]
                name = re.sub(r"[-_.]+", "-", name).lower()
                resolved[name] = wheel_version
                hashes.setdefault(name, set()).add(hashlib.sha256(wheel.read_bytes()).hexdigest())
            if versions and resolved != versions:
                raise SystemExit(f"{variant.name} resolves differently: {resolved} != {versions}")
            versions = resolved
    lines = ["# The layer's dependencies, every wheel of every variant pinned by hash.",
             "# Generated by `make layer-lock` from pyproject.toml's dependencies; do not edit by hand."]
    for name in sorted(versions):
        lines.append(f"{name}=={versions[name]} \\")
        lines += [f"    --hash=sha256:{digest} \\" for digest in sorted(hashes[name])]
        lines[-1] = lines[-1].removesuffix(" \\")
    path.write_text("\n".join(lines) + "\n")
    return path


def locked_versions(path: Path = LOCK) -> dict[str, str]:
    pins = re.findall(r"^([a-z0-9-]+)==(\S+)", path.read_text(), re.MULTILINE)
    return dict(pins)


@functools.cache
def bytecode_compiler() -> Path:
    """The pinned compilers (Pyodide, one per Python), installed from the npm registry as package-lock.json says."""
    installed = BYTECODE / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (BYTECODE / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BYTECODE, check=True)
    return BYTECODE / "compile.mjs"


def compile_with_pyodide(variant: Variant, lib: Path) -> None:
    subprocess.run(["node", str(bytecode_compiler()), variant.python, str(lib), f"{RUNTIME_HOME}/{variant.runtime}"],
                   check=True, stdout=subprocess.DEVNULL)


def compile_with_this_python(variant: Variant, lib: Path) -> None:
    assert variant == host_variant(), "this interpreter writes its own version's bytecode only"
    if not compileall.compile_dir(lib, ddir=f"{RUNTIME_HOME}/{variant.runtime}", quiet=1, workers=0,
                                  invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
        raise SystemExit(f"bytecode for {variant.name} failed")


def lay_out(variant: Variant, out: Path, *, host_compiler: bool = False) -> Path:
    """The layer as Lambda unpacks it at /opt."""
    if out.exists():
        shutil.rmtree(out)
    home = out / NAME
    lib = home / variant.runtime
    lib.mkdir(parents=True)
    (out / "extensions").mkdir()
    shutil.copy2(LAYER / "extensions" / NAME, out / "extensions" / NAME)
    (out / "extensions" / NAME).chmod(0o755)
    for script in ("main.py", "no-python.sh", WRAPPER):
        shutil.copy2(LAYER / script, home / script)
    (home / WRAPPER).chmod(0o755)  # AWS_LAMBDA_EXEC_WRAPPER must be executable
    stamp = {"name": NAME, "version": version(), "runtime": variant.runtime, "architecture": variant.architecture}
    (home / "layer.json").write_text(json.dumps(stamp, indent=2) + "\n")
    pip("install", "--quiet", "--no-deps", "--require-hashes", "--no-compile", "--target", str(lib),
        *variant.pip_target(), "-r", str(LOCK))
    shutil.copytree(ROOT / "extension", lib / "extension", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(lib / "bin", ignore_errors=True)  # the dependencies' console scripts: never run inside Lambda
    # The layer is read-only at /opt, so Python could never cache bytecode there: it ships compiled.
    (compile_with_this_python if host_compiler else compile_with_pyodide)(variant, lib)
    return out


def files(tree: Path) -> list[Path]:
    found = sorted((p for p in tree.rglob("*") if not p.is_dir()), key=lambda p: p.relative_to(tree).as_posix())
    links = [p for p in found if p.is_symlink()]
    if links:
        raise SystemExit(f"the layer may hold regular files only, not {links[0]}")
    return found


def write_zip(tree: Path, target: Path) -> Path:
    """Same files, same bytes: sorted entries, one fixed timestamp, Unix modes and nothing else from the disk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for path in files(tree):
            entry = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=ZIP_TIME)
            entry.create_system = 3  # Unix, so Lambda keeps the modes below
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes(), compresslevel=9)
    return target


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    variant: Variant
    zip_path: Path
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str

    def problems(self) -> list[str]:
        found = []
        if self.zipped_bytes > MAX_ZIPPED_BYTES:
            found.append(f"{self.zip_path.name} is {self.zipped_bytes / 2**20:.1f} MiB zipped (budget 10 MiB)")
        if self.unzipped_bytes > MAX_UNZIPPED_BYTES:
            found.append(f"{self.zip_path.name} is {self.unzipped_bytes / 2**20:.1f} MiB unzipped (budget 30 MiB)")
        return found


def build_zip(variant: Variant, dist: Path) -> Built:
    with tempfile.TemporaryDirectory() as scratch:
        tree = lay_out(variant, Path(scratch) / "opt")
        unzipped = sum(path.stat().st_size for path in files(tree))
        target = write_zip(tree, dist / f"{variant.name}.zip")
    return Built(variant=variant, zip_path=target, unzipped_bytes=unzipped, zipped_bytes=target.stat().st_size,
                 sha256=hashlib.sha256(target.read_bytes()).hexdigest())


def build_all(dist: Path, variants: Iterable[Variant] = VARIANTS) -> list[Built]:
    check_version_stamps()
    return [build_zip(variant, dist) for variant in variants]


def report(built: list[Built]) -> str:
    lines = [f"{'layer':<38} {'unzipped':>9} {'zipped':>8}  sha256"]
    lines += [f"{b.zip_path.name:<38} {b.unzipped_bytes / 2**20:>7.1f}Mi {b.zipped_bytes / 2**20:>6.1f}Mi  "
              f"{b.sha256[:16]}" for b in built]
    return "\n".join(lines)


def build(out: Path) -> Path:
    """The layer for this machine's Python, unpacked: what `make layer-local`, the demo and the tests use."""
    return lay_out(host_variant(), out, host_compiler=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="lay out this machine's variant, unpacked, in OUT")
    parser.add_argument("--dist", type=Path, help="write every variant's zip to DIST and report the sizes")
    parser.add_argument("--variant", action="append", choices=[v.name for v in VARIANTS],
                        help="only this variant (repeatable; with --dist)")
    parser.add_argument("--lock", action="store_true", help=f"resolve and hash the wheels into {LOCK.name}")
    args = parser.parse_args()
    if args.lock:
        print(lock())
    if args.out:
        print(build(args.out))
    if args.dist:
        built = build_all(args.dist, [v for v in VARIANTS if not args.variant or v.name in args.variant])
        print(report(built))
        problems = [problem for b in built for problem in b.problems()]
        if problems:
            print("\n".join(["over the size budget:", *problems]), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
