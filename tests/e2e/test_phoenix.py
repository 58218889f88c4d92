"""End to end into Arize Phoenix: the sample functions in the sandbox, the extension exporting to Phoenix's
OTLP/HTTP endpoint, then what Phoenix stored (its REST API) and what its UI shows (headless Chromium), checked
against the platform events the sandbox produced. Run by `make test-phoenix`."""

from __future__ import annotations

import datetime as dt
import struct
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from support import ROOT

from e2e.browser import WINDOW, Capture, capture
from e2e.phoenix import running_phoenix
from e2e.phoenix_api import PhoenixAPI, StoredSpan, trace_url
from e2e.workload import FUNCTION_NAME, Run, export_env, run_sample_functions
from sandbox import platform_events as pe
from sandbox.otlp_receiver import OTLPReceiver
from sandbox.records import InvokeRecord

pytestmark = [pytest.mark.phoenix, pytest.mark.timeout(600)]

PHOENIX = ROOT / ".venv-phoenix" / "bin" / "phoenix"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PHASES = ("responseLatency", "responseDuration", "runtimeOverhead")


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    run: Run
    spans: list[StoredSpan]
    page: Capture
    elsewhere: Counter[str]
    """What reached the general OTLP endpoint, which only the per-signal traces endpoint overrides."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def observed(built_layer: Path, runtime_dir: Path, work_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    """One run, everything collected while Phoenix serves; Phoenix is stopped before any check."""
    base = tmp_path_factory.mktemp("phoenix")
    async with OTLPReceiver(port=0) as elsewhere, running_phoenix(PHOENIX, base / "phoenix") as phoenix:
        env = {**export_env(phoenix.traces_endpoint), "OTEL_EXPORTER_OTLP_ENDPOINT": elsewhere.endpoint}
        run = await run_sample_functions(layer=built_layer, runtime_dir=runtime_dir, work_dir=work_dir, env=env)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            api = PhoenixAPI(session, phoenix.url)
            spans = await api.spans_when(lambda spans: len(spans) >= expected_span_count(run), timeout_s=30)
            project_id = await api.project_id()
        first = [s for s in spans if s.attributes.get("faas.invocation_id") == run.invocations[0].request_id]
        assert first, "the first invocation's span is not in Phoenix"
        page = await capture(trace_url(phoenix.url, project_id, first[0].trace_id), base / "trace.png")
        received = Counter({"spans": len(elsewhere.spans()), "log records": len(elsewhere.log_records()),
                            "metrics": len(elsewhere.metrics())})
    yield Observed(run=run, spans=spans, page=page, elsewhere=received)


# What the platform said, read as the extension reads it: envelope times in milliseconds, durations in
# microseconds; Phoenix keeps microseconds, so every expected time below is exact.

def micros(iso: str) -> int:
    return (dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) - EPOCH) // dt.timedelta(microseconds=1)


def window(start_iso: str, duration_ms: float) -> tuple[int, int]:
    start = micros(start_iso)
    return start, start + round(duration_ms * 1000)


def stored_window(span: StoredSpan) -> tuple[int, int]:
    unit = dt.timedelta(microseconds=1)
    return (span.start_time - EPOCH) // unit, (span.end_time - EPOCH) // unit


def records_of(run: Run, kind: str) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Request id -> (envelope time, record) of every `platform.<kind>` event."""
    found = {}
    for event in run.platform_events:
        if event.type == f"platform.{kind}" and isinstance(event.record, dict):
            found[event.record["requestId"]] = (pe.iso_time(event.time_s), event.record)
    return found


def inits_of(run: Run) -> list[tuple[str, str, Mapping[str, Any], str]]:
    """Per init: (initStart time, its phase, its initReport record, the request id of the first invocation after)."""
    inits: list[tuple[str, str, Mapping[str, Any], str]] = []
    start: tuple[str, str] | None = None
    report: Mapping[str, Any] = {}
    for event in run.platform_events:
        assert isinstance(event.record, dict)
        if event.type == "platform.initStart":
            start = (pe.iso_time(event.time_s), event.record["phase"])
        elif event.type == "platform.initReport":
            report = event.record
        elif event.type == "platform.start" and start is not None:
            inits.append((*start, report, event.record["requestId"]))
            start = None
    return inits


def reported(record: InvokeRecord) -> bool:
    """The sandbox writes a timed-out invocation's report after the reset, when its extension is gone (README)."""
    return record.status != "timeout"


def expected_span_count(run: Run) -> int:
    done, reports = records_of(run, "runtimeDone"), records_of(run, "report")
    count = 0
    for record in run.invocations:
        count += 1 + len(done[record.request_id][1].get("spans", []))
        if reported(record):
            count += 1 + len(reports[record.request_id][1].get("spans", []))
    return count + len(inits_of(run))


def invocation_spans(observed: Observed) -> dict[str, StoredSpan]:
    spans = [s for s in observed.spans if s.name == FUNCTION_NAME]
    by_request = {str(s.attributes["faas.invocation_id"]): s for s in spans}
    assert len(by_request) == len(spans), "an invocation has more than one span"
    return by_request


def children(observed: Observed, parent: StoredSpan) -> dict[str, StoredSpan]:
    found = [s for s in observed.spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id]
    by_name = {s.name: s for s in found}
    assert len(by_name) == len(found), f"two children of {parent.name} share a name: {[s.name for s in found]}"
    return by_name


def xray(header: str) -> tuple[str, str]:
    """The W3C trace id and parent span id an X-Amzn-Trace-Id header stands for."""
    fields = dict(part.split("=", 1) for part in header.split(";"))
    return fields["Root"][2:].replace("-", ""), fields["Parent"]


def test_one_trace_per_invocation_joined_to_its_callers_trace(observed: Observed) -> None:
    by_request = invocation_spans(observed)
    assert set(by_request) == {r.request_id for r in observed.run.invocations}
    assert len({s.trace_id for s in observed.spans}) == len(observed.run.invocations)
    for record, header in zip(observed.run.invocations, observed.run.trace_headers, strict=True):
        span = by_request[record.request_id]
        assert (span.trace_id, span.parent_id) == xray(header)


def test_the_invocation_span_has_its_children_and_attributes(observed: Observed) -> None:
    by_request = invocation_spans(observed)
    done = records_of(observed.run, "runtimeDone")
    assert observed.run.invocations[0].cold_start
    for record in observed.run.invocations:
        span = by_request[record.request_id]
        assert span.attributes["faas.invocation_id"] == record.request_id
        assert span.attributes["faas.coldstart"] is record.cold_start
        assert span.attributes["aws.lambda.status"] == record.status
        assert str(span.attributes["aws.lambda.invoked_arn"]).endswith(f":function:{FUNCTION_NAME}")
        phases = [phase["name"] for phase in done[record.request_id][1].get("spans", [])]
        expected = {*phases, *(["report"] if reported(record) else []), *(["init"] if record.cold_start else [])}
        assert set(children(observed, span)) == expected, record
        if record.status == "success":
            assert set(phases) == set(PHASES)
    report_children = {
        name for record in observed.run.invocations if reported(record)
        for name in children(observed, children(observed, by_request[record.request_id])["report"])}
    assert report_children == {"extensionOverhead"}


def test_the_init_span_is_in_the_trace_of_the_first_invocation_after_it(observed: Observed) -> None:
    by_request = invocation_spans(observed)
    inits = inits_of(observed.run)
    # The environment's first init, and the one after the timeout reset it (a suppressed init, phase "invoke").
    assert [phase for _, phase, _, _ in inits] == ["init", "invoke"]
    assert inits[0][3] == observed.run.invocations[0].request_id
    stored = [s for s in observed.spans if s.name == "init"]
    assert len(stored) == len(inits)
    for start, phase, report, request_id in inits:
        parent = by_request[request_id]
        init = children(observed, parent)["init"]
        assert init.attributes["aws.lambda.init.phase"] == phase
        assert stored_window(init) == window(start, report["metrics"]["durationMs"])


def test_error_and_timeout_statuses(observed: Observed) -> None:
    by_request = invocation_spans(observed)
    statuses = {record.status for record in observed.run.invocations}
    assert statuses == {"success", "error", "timeout"}
    for record in observed.run.invocations:
        span = by_request[record.request_id]
        if record.status == "success":
            assert span.status_code in ("UNSET", "OK")
        else:
            assert (span.status_code, span.status_message) == ("ERROR", record.error_type)
            assert record.error_type == ("Sandbox.Timedout" if record.status == "timeout" else "Runtime.Unknown")
        if reported(record):
            report = children(observed, span)["report"]
            assert (report.status_code == "ERROR") is (record.status != "success")


def test_span_times_are_the_platform_events_times(observed: Observed) -> None:
    by_request = invocation_spans(observed)
    starts, done, reports = (records_of(observed.run, kind) for kind in ("start", "runtimeDone", "report"))
    checked = 0
    for record in observed.run.invocations:
        span, below = by_request[record.request_id], children(observed, by_request[record.request_id])
        start_time, _ = starts[record.request_id]
        # The invocation ends at start + runtimeDone's durationMs, not at the runtimeDone envelope's time.
        assert stored_window(span) == window(start_time, done[record.request_id][1]["metrics"]["durationMs"])
        phases = done[record.request_id][1].get("spans", [])
        for phase in phases:
            assert stored_window(below[phase["name"]]) == window(phase["start"], phase["durationMs"])
        checked += 1 + len(phases)
        if reported(record):
            report = reports[record.request_id][1]
            assert stored_window(below["report"]) == window(start_time, report["metrics"]["durationMs"])
            for phase in report.get("spans", []):
                under_report = children(observed, below["report"])[phase["name"]]
                assert stored_window(under_report) == window(phase["start"], phase["durationMs"])
                checked += 1
            checked += 1
    # Every span Phoenix holds was compared with its event (the init spans in the test above).
    assert checked + len(inits_of(observed.run)) == len(observed.spans) == expected_span_count(observed.run)


def test_logs_and_metrics_stay_off_and_traces_use_their_own_endpoint(observed: Observed) -> None:
    assert observed.elsewhere == Counter({"spans": 0, "log records": 0, "metrics": 0})


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_trace_view_shows_the_invocation(observed: Observed) -> None:
    first = observed.run.invocations[0]
    span = invocation_spans(observed)[first.request_id]
    text = observed.page.text
    # The trace's header, its span tree (the invocation and its children), and the selected root span's attributes.
    assert f"Trace {span.trace_id}" in text
    for name in (FUNCTION_NAME, "init", "report", "extensionOverhead", *PHASES):
        assert name in text.split(), name
    assert first.request_id in text
    assert png_size(observed.page.screenshot) == WINDOW
