"""The extension against a collector that goes away: what was buffered arrives once it is back, and what did not
fit in the buffer is exactly what the extension reports as dropped. Small versions of `bench/faults.py`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from support import EXAMPLES, SettingsFactory

from sandbox.otlp_receiver import FaultMode, OTLPReceiver, ReceivedSpan
from sandbox.records import InvokeRecord
from sandbox.runner import LocalLambda

FUNCTION = "faults"
# What one invocation of app.succeed becomes; the first invocation of an environment also carries `init`.
SPAN_NAMES = {FUNCTION, "responseLatency", "responseDuration", "runtimeOverhead", "report", "extensionOverhead"}


class Invoker:
    """Invokes with a fresh X-Ray trace each time, so every span names its invocation by its trace id."""

    def __init__(self, sandbox: LocalLambda) -> None:
        self.sandbox = sandbox
        self.traces: dict[str, str] = {}  # trace id -> request id
        self.records: list[InvokeRecord] = []

    async def invoke(self, count: int) -> None:
        for _ in range(count):
            trace_id = uuid.uuid4().hex
            header = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
            record = await self.sandbox.invoke(b'{"action": "succeed"}', trace_header=header)
            self.traces[trace_id] = record.request_id
            self.records.append(record)

    def expected(self) -> set[tuple[str, str]]:
        request_ids = [r.request_id for r in self.records]
        return {(rid, name) for rid in request_ids for name in SPAN_NAMES} | {(request_ids[0], "init")}

    def arrived(self, spans: list[ReceivedSpan]) -> list[tuple[str, str]]:
        """(request id, span name) of every distinct span that arrived."""
        distinct = {s.span_id: s for s in spans}.values()
        return [(self.traces.get(s.trace_id, "unknown trace"), s.name) for s in distinct]


class ExtensionLog:
    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def __call__(self, source: str, line: str) -> None:
        if source.startswith("extension-") and line.startswith("{"):
            self.entries.append(json.loads(line))

    def dropped(self) -> int:
        return sum(int(str(e["dropped"])) for e in self.entries if e.get("event") == "spans_dropped")


def settings_for(make_settings: SettingsFactory, layer: Path, receiver: OTLPReceiver, **env: str) -> object:
    return make_settings(function_dir=EXAMPLES, handler="app.mixed", function_name=FUNCTION, layer_dir=layer,
                         timeout_s=5.0, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **env})


@pytest.mark.parametrize("flush", ["end", "adaptive"])
async def test_spans_buffered_while_the_collector_was_down_all_arrive(
        make_settings: SettingsFactory, built_layer: Path, work_dir: Path, flush: str) -> None:
    log = ExtensionLog()
    async with OTLPReceiver(port=0) as receiver:
        settings = settings_for(make_settings, built_layer, receiver, OTEL_LAMBDA_FLUSH=flush)
        async with LocalLambda(settings, work_dir=work_dir, on_output=log) as sandbox:  # type: ignore[arg-type]
            invoker = Invoker(sandbox)
            await invoker.invoke(1)
            await receiver.switch(FaultMode.DOWN)
            await invoker.invoke(8)  # with `end`, each of these flushes into a closed port
            await receiver.switch(FaultMode.OK)
            await invoker.invoke(2)
        arrived = invoker.arrived(receiver.spans())
    assert all(r.status == "success" for r in invoker.records)
    assert sorted(arrived) == sorted(invoker.expected())  # every span, each once
    assert log.dropped() == 0


async def test_an_overloaded_buffer_drops_exactly_what_it_reports(
        make_settings: SettingsFactory, built_layer: Path, work_dir: Path) -> None:
    buffer = 16
    log = ExtensionLog()
    async with OTLPReceiver(port=0) as receiver:
        settings = settings_for(make_settings, built_layer, receiver, OTEL_LAMBDA_BUFFER_MAX_SPANS=str(buffer))
        await receiver.switch(FaultMode.DOWN)
        async with LocalLambda(settings, work_dir=work_dir, on_output=log) as sandbox:  # type: ignore[arg-type]
            invoker = Invoker(sandbox)
            await invoker.invoke(-(-10 * buffer // len(SPAN_NAMES)))  # 10x what the buffer holds
            await receiver.switch(FaultMode.OK)  # what the buffer still holds leaves at SHUTDOWN
        arrived = invoker.arrived(receiver.spans())
    produced = invoker.expected()
    assert len(produced) >= 10 * buffer
    assert set(arrived) <= produced and len(set(arrived)) == len(arrived)
    assert len(arrived) == buffer  # the buffer was full when the collector came back
    last = invoker.records[-1].request_id
    assert {(last, name) for name in SPAN_NAMES} <= set(arrived)  # the oldest are dropped, never the newest
    assert log.dropped() == len(produced) - len(arrived)
