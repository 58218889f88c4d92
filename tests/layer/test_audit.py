"""The dependency audit: verdicts from the index's JSON, what fails and what warns, and no verdict without an answer."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import pytest
from support import load_script


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    return load_script("audit")


def advisory(id: str, fixed_in: list[str], withdrawn: str | None = None) -> dict[str, Any]:
    return {"id": id, "aliases": [f"CVE-{id}"], "fixed_in": fixed_in, "withdrawn": withdrawn, "details": "..."}


def index(documents: Mapping[str, Mapping[str, Any]]) -> Any:
    """A fake JSON API: the documents it holds by path, 404 (None) for the rest."""
    asked: list[str] = []

    def fetch(path: str) -> Mapping[str, Any] | None:
        asked.append(path)
        return documents.get(path)

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


def project(latest: str, *vulnerabilities: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": list(vulnerabilities)}


def test_the_lock_is_read_as_name_and_version_without_hashes(audit: ModuleType, layer_build: ModuleType) -> None:
    pins = audit.layer_pins()
    assert {p.name: p.version for p in pins} == layer_build.locked_versions()
    assert {p.scope for p in pins} == {"layer"}
    assert audit.pins("Foo_Bar==1.0 \\\n    --hash=sha256:ab\n# x==2\nbaz==2.0b1; python_version<'4'\n", "dev") == [
        audit.Pin(name="foo-bar", version="1.0", scope="dev"), audit.Pin(name="baz", version="2.0b1", scope="dev")]


def test_the_latest_release_is_judged_by_the_projects_advisories_less_the_withdrawn(audit: ModuleType) -> None:
    fetch = index({"aiohttp/json": project("3.9.0", advisory("A-1", ["3.9.2"]), advisory("A-2", [], "2024-01-01"))})
    verdict = audit.audit_one(audit.Pin(name="aiohttp", version="3.9.0", scope="layer"), fetch)
    assert verdict.status == "vulnerable"
    assert [a.id for a in verdict.advisories] == ["A-1"]
    assert verdict.advisories[0].fixed_in == ("3.9.2",)
    assert fetch.asked == ["aiohttp/json"]  # one request when the pin is the latest release
    assert "A-1 (CVE-A-1) fixed in 3.9.2" in verdict.line()


def test_an_older_pin_is_judged_by_its_releases_advisories_where_the_index_serves_them(audit: ModuleType) -> None:
    fetch = index({"yarl/json": project("1.25.1"), "yarl/1.9.0/json": project("1.25.1", advisory("Y-1", ["1.9.1"]))})
    verdict = audit.audit_one(audit.Pin(name="yarl", version="1.9.0", scope="layer"), fetch)
    assert verdict.status == "vulnerable" and [a.id for a in verdict.advisories] == ["Y-1"]


def test_an_older_pin_whose_release_json_is_not_served_is_unaudited_not_clean(audit: ModuleType) -> None:
    fetch = index({"yarl/json": project("1.25.1")})  # the latest release is clean: that says nothing of 1.9.0
    verdict = audit.audit_one(audit.Pin(name="yarl", version="1.9.0", scope="layer"), fetch)
    assert verdict.status == "unaudited" and "1.25.1" in verdict.reason
    missing = audit.audit_one(audit.Pin(name="nowhere", version="1.0", scope="layer"), index({}))
    assert missing.status == "unaudited" and missing.reason == "not on the index"


def test_a_layer_vulnerability_fails_and_the_rest_warns(audit: ModuleType) -> None:
    fetch = index({"a/json": project("1.0"), "b/json": project("2.0", advisory("B-1", ["2.1"])),
                   "c/json": project("3.1")})
    layer = [audit.Pin(name="a", version="1.0", scope="layer")]
    dev = [audit.Pin(name="b", version="2.0", scope="dev"), audit.Pin(name="c", version="3.0", scope="dev")]
    lines, code = audit.report(audit.audit(layer + dev, fetch))
    assert code == 0
    assert lines[0] == "layer: 1 packages, 0 with known vulnerabilities, 0 unaudited"
    assert [line.split(":")[0] for line in lines[1:3]] == ["WARNING dev", "WARNING dev"]
    assert lines[-1] == "dev: 2 packages, 1 with known vulnerabilities, 1 unaudited"
    vulnerable, unaudited = audit.Pin(name="b", version="2.0", scope="layer"), audit.Pin(name="c", version="3.0",
                                                                                      scope="layer")
    lines, code = audit.report(audit.audit([vulnerable], fetch))
    assert code == 1 and lines[0].startswith("FAILED layer: b ")
    lines, code = audit.report(audit.audit([unaudited], fetch))
    assert code == 0 and lines[0].startswith("WARNING layer: c ")
    lines, code = audit.report(audit.audit([unaudited], fetch), strict=True)
    assert code == 1 and lines[0].startswith("FAILED layer: c ")


def test_the_dev_environment_holds_the_dev_pins_and_the_sandbox_runtime_but_not_the_project(audit: ModuleType) -> None:
    names = {p.name for p in audit.dev_pins()}
    assert {"pytest", "ruff", "moto", "awslambdaric", "simplejson", "snapshot-restore-py", "pip"} <= names
    assert "lambda-otel-extension" not in names


def test_the_json_api_is_where_pip_finds_pypi(audit: ModuleType) -> None:
    assert audit.json_api().startswith("https://") and audit.json_api().endswith("/pypi")


class Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {"/pypi/ok/json": (200, json.dumps(project("1.0")).encode()), "/pypi/garbled/json": (200, b"<")
                        }.get(self.path, (503 if self.path == "/pypi/down/json" else 404, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pypi"
    finally:
        server.shutdown()
        server.server_close()


def test_only_a_404_is_an_answer_everything_else_is_no_verdict(
    audit: ModuleType, local_index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit.time, "sleep", lambda _: None)
    fetch = audit.fetcher(local_index, timeout_s=5, attempts=2)
    assert fetch("ok/json") == project("1.0")
    assert fetch("absent/json") is None
    for path in ("down/json", "garbled/json"):
        with pytest.raises(audit.AuditUnavailable, match=path):
            fetch(path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(audit.AuditUnavailable, match="refused"):
        audit.fetcher(f"http://127.0.0.1:{port}/pypi", attempts=1)("ok/json")


def test_an_unreachable_index_ends_the_audit_with_exit_2(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(sys, "argv", ["audit.py", "--layer-only", "--json-api", f"http://127.0.0.1:{port}/pypi"])
    monkeypatch.setattr(audit.time, "sleep", lambda _: None)
    assert audit.main() == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "FAILED audit unavailable, no verdict" in captured.err
