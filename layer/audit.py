"""Audit the dependencies against PyPI's advisories: every wheel locked for the layer (a finding fails), and every
distribution in the developer venv and the sandbox's runtime directory (a finding is a warning).

Why not pip-audit: its PyPI service asks for each release's JSON (/pypi/<name>/<version>/json), which the network
CI runs on answers 404, and pip-audit takes a 404 for "not on PyPI", skips the package and reports "No known
vulnerabilities found" with exit 0: every package skipped, the audit green. Its OSV service is unreachable there.
The project's JSON (/pypi/<name>/json) is reachable; its advisories are those of the project's latest release. So:
a pin that is the latest release is audited from the project's JSON, an older pin from its release's JSON where that
answers, and a pin that neither covers is *unaudited*. A known vulnerability in a layer wheel fails; an unaudited one
is printed as a warning on every run (and fails with --strict): where release JSON is not served, every upstream
release would otherwise turn the build red with no vulnerability in sight, and a build that fails for no reason
teaches people to ignore it. Raising the pin (`make layer-lock`) makes it auditable again.

Why a dev-only finding warns instead of failing: those tools never reach a function (the layer holds only the lock's
wheels), CI runs them on loopback with no credentials, and the dev venv is not locked, so its transitive versions, and
with them the verdict, move with every upstream release; a red build there would block layer fixes, security fixes
included, on an advisory that cannot affect what ships. They are printed on every run, to be fixed by raising a pin.

No answer (DNS, refused, timeout, 5xx, garbled JSON) ends the audit with exit 2, saying what failed."""

import argparse
import importlib.metadata
import json
import re
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "layer" / "requirements.lock"
RUNTIME_REQUIREMENTS = ROOT / "sandbox" / "runtime-requirements.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)

Document = Mapping[str, Any]
# A JSON document by path under the JSON API (`aiohttp/json`), None when the index answers 404.
Fetch = Callable[[str], Document | None]


class AuditUnavailable(Exception):
    """The advisories could not be read: the audit has no verdict."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    name: str
    version: str
    scope: Literal["layer", "dev"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    pin: Pin
    status: Literal["clean", "vulnerable", "unaudited"]
    advisories: tuple[Advisory, ...] = ()
    reason: str = ""

    def line(self) -> str:
        where = f"{self.pin.scope}: {self.pin.name} {self.pin.version}"
        if self.status == "unaudited":
            return f"{where} unaudited: {self.reason}"
        found = "; ".join(f"{a.id} ({', '.join(a.aliases) or 'no alias'}) fixed in "
                          f"{', '.join(a.fixed_in) or 'no release yet'}" for a in self.advisories)
        return f"{where} {self.status}{': ' + found if found else ''}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str, scope: Literal["layer", "dev"]) -> list[Pin]:
    """The `name==version` lines of a requirements file (hashes and comments ignored)."""
    return [Pin(name=canonical(name), version=version, scope=scope) for name, version in PIN.findall(text)]


def advisories(document: Document) -> tuple[Advisory, ...]:
    return tuple(
        Advisory(id=str(v["id"]), aliases=tuple(v.get("aliases") or ()), fixed_in=tuple(v.get("fixed_in") or ()))
        for v in document.get("vulnerabilities") or () if not v.get("withdrawn")
    )


def judge(pin: Pin, document: Document) -> Verdict:
    found = advisories(document)
    return Verdict(pin=pin, status="vulnerable" if found else "clean", advisories=found)


def audit_one(pin: Pin, fetch: Fetch) -> Verdict:
    """The project's JSON first (one request when the pin is the latest release), else the release's own."""
    project = fetch(f"{pin.name}/json")
    if project is None:
        return Verdict(pin=pin, status="unaudited", reason="not on the index")
    latest = str(project["info"]["version"])
    if latest == pin.version:
        return judge(pin, project)
    release = fetch(f"{pin.name}/{pin.version}/json")
    if release is not None:
        return judge(pin, release)
    return Verdict(pin=pin, status="unaudited",
                   reason=f"the latest release is {latest}, and this release's advisories are not reachable")


def audit(all_pins: Iterable[Pin], fetch: Fetch, workers: int = 8) -> list[Verdict]:
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(audit_one, pin, fetch) for pin in all_pins]
        try:
            return [future.result() for future in futures]
        finally:  # the first failure decides: the queued requests are not sent
            pool.shutdown(cancel_futures=True)


def report(verdicts: list[Verdict], *, strict: bool = False) -> tuple[list[str], int]:
    """What to print, and the exit code: 1 when a layer wheel is vulnerable (or, with `strict`, unaudited)."""
    lines: list[str] = []
    failed = False
    for scope in ("layer", "dev"):
        mine = [v for v in verdicts if v.pin.scope == scope]
        if not mine:
            continue
        for verdict in (v for v in mine if v.status != "clean"):
            fails = scope == "layer" and (verdict.status == "vulnerable" or strict)
            failed |= fails
            lines.append(f"{'FAILED' if fails else 'WARNING'} {verdict.line()}")
        vulnerable = sum(v.status == "vulnerable" for v in mine)
        unaudited = sum(v.status == "unaudited" for v in mine)
        lines.append(f"{scope}: {len(mine)} packages, {vulnerable} with known vulnerabilities, {unaudited} unaudited")
    return lines, 1 if failed else 0


# ---- the shell: where the pins come from, and the index's JSON API ------------------------------------------------

def layer_pins(lock: Path = LOCK) -> list[Pin]:
    return pins(lock.read_text(), "layer")


def dev_pins(runtime_requirements: Path = RUNTIME_REQUIREMENTS) -> list[Pin]:
    """What this interpreter's environment holds (the dev extra and everything it pulled in), and the sandbox
    runtime's packages, less the project itself."""
    ours = canonical(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"])
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    found = {(p.name, p.version): p for p in pins(runtime_requirements.read_text(), "dev")}
    found |= {(name, version): Pin(name=name, version=version, scope="dev")
              for name, version in installed.items() if name != ours}
    return sorted(found.values(), key=lambda p: (p.name, p.version))


def json_api() -> str:
    """PyPI's JSON API, where pip itself knows PyPI to be."""
    from pip._internal.models.index import PyPI

    return str(PyPI.pypi_url)


def fetcher(base: str, timeout_s: float = 30, attempts: int = 3) -> Fetch:
    def fetch(path: str) -> Document | None:
        url = f"{base}/{path}"
        problem: Exception = AuditUnavailable("no attempt")
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    document: Document = json.load(response)
                    return document
            except urllib.error.HTTPError as error:
                error.close()  # it holds the connection
                if error.code == 404:
                    return None
                problem = error
            except (OSError, ValueError) as error:  # URLError, timeouts, resets; garbled JSON
                problem = error
            if attempt + 1 < attempts:
                time.sleep(attempt + 1)
        raise AuditUnavailable(f"{url}: {problem}")

    return fetch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", type=Path, default=LOCK, help="the layer's lock (default: %(default)s)")
    parser.add_argument("--layer-only", action="store_true", help="skip the developer environment")
    parser.add_argument("--json-api", help="another index's PyPI-style JSON API (default: PyPI's, as pip knows it)")
    parser.add_argument("--strict", action="store_true", help="an unaudited layer wheel fails too")
    args = parser.parse_args()
    started = time.monotonic()
    todo = layer_pins(args.lock) + ([] if args.layer_only else dev_pins())
    try:
        verdicts = audit(todo, fetcher(args.json_api or json_api()))
    except AuditUnavailable as error:
        print(f"FAILED audit unavailable, no verdict: {error}", file=sys.stderr)
        return 2
    lines, code = report(verdicts, strict=args.strict)
    print("\n".join([*lines, f"audited in {time.monotonic() - started:.1f} s"]))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
