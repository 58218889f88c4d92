"""Bad input, generated: parse_batch on arbitrary bytes, JSON and mutated recorded batches; the span assembler
and the OTLP encoder on arbitrary events. Nothing raises, every item is accounted for, good items survive."""

from __future__ import annotations

import asyncio
import gzip
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from extension.config import SignalExport
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.events import (
    Invoke,
    PlatformInitReport,
    PlatformInitRuntimeDone,
    PlatformInitStart,
    PlatformReport,
    PlatformRuntimeDone,
    PlatformSpan,
    PlatformStart,
    TelemetryEvent,
    TraceContext,
    Unknown,
)
from extension.export.otlp import TRACES, OTLPExporter
from extension.export.transport import Response
from extension.wire import parse_batch

EVENTS = Path(__file__).parent / "events"
# Every recorded batch that is a list of items; each item parsed alone is the reference for "still parsed".
RECORDED: dict[str, list[Any]] = {
    path.name: items for path in sorted(EVENTS.glob("*.json"))
    if isinstance(items := orjson.loads(path.read_bytes()), list)
}
GOOD_ITEMS = [item for items in RECORDED.values() for item in items if not parse_batch(orjson.dumps([item])).malformed]
# Explicit and fixed so the number of inputs tried is known (reported in README's Resilience section); no example
# database, so a run never depends on what an earlier run found.
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=30)


def assert_accounted(raw: bytes) -> None:
    """Never raises; a list's items are each an event or a malformed count; anything else is one malformed."""
    batch = parse_batch(raw)
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        items = None
    if isinstance(items, list):
        assert len(batch.events) + batch.malformed == len(items)
    else:
        assert (batch.events, batch.malformed) == ([], 1)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(raw: bytes) -> None:
    assert_accounted(raw)


@FUZZ
@given(json_values)
def test_arbitrary_json(document: Any) -> None:
    assert_accounted(orjson.dumps(document))


@FUZZ
@given(st.lists(json_values | st.sampled_from(GOOD_ITEMS), max_size=12))
def test_arbitrary_items_in_a_batch(items: list[Any]) -> None:
    assert_accounted(orjson.dumps(items))


def mutate(node: Any, data: st.DataObject, depth: int = 0) -> Any:
    """A copy of `node` with one change somewhere inside: a value replaced, a key dropped, a type swapped."""
    if isinstance(node, dict) and node and depth < 6 and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)))
        copy = dict(node)
        match data.draw(st.sampled_from(["descend", "drop", "replace"])):
            case "descend":
                copy[key] = mutate(node[key], data, depth + 1)
            case "drop":
                del copy[key]
            case _:
                copy[key] = data.draw(json_values)
        return copy
    if isinstance(node, list) and node and depth < 6 and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(node) - 1))
        return [*node[:index], mutate(node[index], data, depth + 1), *node[index + 1:]]
    return data.draw(json_values)


@FUZZ
@given(st.sampled_from(sorted(RECORDED)), st.data())
def test_mutated_recorded_batches(name: str, data: st.DataObject) -> None:
    items = RECORDED[name]
    mutated = [mutate(item, data) if data.draw(st.booleans()) else item for item in items]
    raw = orjson.dumps(mutated)
    assert_accounted(raw)
    if data.draw(st.booleans()):  # and at the byte level: cut short, or a byte changed
        cut = data.draw(st.integers(0, len(raw)))
        flipped = bytearray(raw)
        if flipped:
            flipped[data.draw(st.integers(0, len(flipped) - 1))] = data.draw(st.integers(0, 255))
        assert_accounted(raw[:cut])
        assert_accounted(bytes(flipped))


# Items that can never be a valid event: not an object, or an object without a usable time or type.
bad_items = (json_scalars | st.lists(json_scalars, max_size=3)
             | st.fixed_dictionaries({"type": st.text(max_size=20)}, optional={"record": json_values})
             | st.fixed_dictionaries({"time": st.text(alphabet="xyz: ", max_size=20), "type": st.text(max_size=20)})
             | st.fixed_dictionaries({"time": st.just("2025-01-07T19:49:07.089Z")},
                                     optional={"type": json_scalars.filter(lambda v: not isinstance(v, str))}))


@FUZZ
@given(st.lists(st.sampled_from(GOOD_ITEMS), min_size=1, max_size=8), st.lists(bad_items, max_size=8), st.randoms())
def test_good_items_next_to_bad_ones_are_still_parsed(good: list[Any], bad: list[Any], rng: Any) -> None:
    tagged = [(True, item) for item in good] + [(False, item) for item in bad]
    rng.shuffle(tagged)

    batch = parse_batch(orjson.dumps([item for _, item in tagged]))

    expected = [parse_batch(orjson.dumps([item])).events[0] for is_good, item in tagged if is_good]
    assert batch.events == expected
    assert batch.malformed == len(bad)


# --- the assembler on arbitrary events --------------------------------------------------------

REQUEST_IDS = ["r1", "r2", "r3", "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"]
# What parse_batch can hand over: times from parse_time_unix_nano (years 0001-9999), finite JSON numbers.
times = st.integers(min_value=-62_135_596_800 * 10**9, max_value=253_402_300_799 * 10**9 + 999_999_999)
durations = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=20)
xray_values = st.sampled_from([
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    "Root=1-5759e988-bd862e3fe1be46a994272793", "Root=garbage", "",
]) | texts
tracing = st.none() | st.builds(TraceContext, type=texts, value=xray_values,
                                span_id=st.none() | st.sampled_from(["53995c3f42cd8ad8", "0000000000000000"]) | texts)
phases = st.lists(st.builds(PlatformSpan, name=texts, start_unix_nano=times, duration_ms=durations), max_size=3)
statuses = st.sampled_from(["success", "error", "failure", "timeout"]) | texts
request_ids = st.sampled_from(REQUEST_IDS) | texts
optional_ints = st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1)

events = st.one_of(
    st.builds(PlatformStart, time_unix_nano=times, request_id=request_ids, version=st.none() | texts,
              tracing=tracing),
    st.builds(PlatformRuntimeDone, time_unix_nano=times, request_id=request_ids, status=statuses,
              error_type=st.none() | texts, duration_ms=st.none() | durations, produced_bytes=optional_ints,
              spans=phases.map(tuple), tracing=tracing),
    st.builds(PlatformReport, time_unix_nano=times, request_id=request_ids, status=statuses,
              duration_ms=durations, billed_duration_ms=optional_ints, memory_size_mb=optional_ints,
              max_memory_used_mb=optional_ints, init_duration_ms=st.none() | durations,
              restore_duration_ms=st.none() | durations, error_type=st.none() | texts, spans=phases.map(tuple),
              tracing=tracing),
    st.builds(PlatformInitStart, time_unix_nano=times, initialization_type=texts, phase=texts,
              function_name=st.none() | texts, instance_id=st.none() | texts,
              instance_max_memory=optional_ints, tracing=tracing),
    st.builds(PlatformInitRuntimeDone, time_unix_nano=times, initialization_type=texts, phase=texts,
              status=statuses, error_type=st.none() | texts, spans=phases.map(tuple), tracing=tracing),
    st.builds(PlatformInitReport, time_unix_nano=times, initialization_type=texts, phase=texts, status=statuses,
              duration_ms=durations, error_type=st.none() | texts, spans=phases.map(tuple), tracing=tracing),
    st.builds(Unknown, time_unix_nano=times, type=texts, record=json_values),
)


class CountingIds:
    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._next)

    def generate_span_id(self) -> int:
        return next(self._next)


@FUZZ
@given(st.lists(st.lists(events, max_size=6), max_size=6),
       st.lists(st.builds(Invoke, request_id=request_ids, deadline_ms=st.integers(0, 2**63),
                          invoked_function_arn=texts), max_size=3))
def test_the_assembler_never_raises_and_what_it_emits_encodes(batches: list[list[TelemetryEvent]],
                                                              invokes: list[Invoke]) -> None:
    resource = lambda_resource(service_name="fn", function_name="fn")
    assembler = SpanAssembler(resource=resource, function_name="fn", ids=CountingIds(), max_pending=3)
    emitted = []
    for invoke in invokes:
        assembler.note_invoke(invoke)
    for batch in batches:
        emitted += assembler.feed(batch)
        assert assembler.stats.pending <= 3
    emitted += assembler.drain_orphans()

    assert assembler.stats.pending == 0
    # What the assembler emits must also get through the exporter: an exception there would end the extension.
    # A time OTLP cannot hold (before 1970, after 2554) is left out and counted, and only that span.
    transport = CountingTransport()
    exporter = OTLPExporter(transport, SignalExport(endpoint="http://127.0.0.1:9/v1/traces"), TRACES)
    result = asyncio.run(exporter.export(emitted, deadline=None))
    assert result.ok or result.unencodable == len(emitted)
    assert transport.spans + result.unencodable == len(emitted)


class CountingTransport:
    def __init__(self) -> None:
        self.spans = 0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Response:
        request = ExportTraceServiceRequest()
        request.ParseFromString(gzip.decompress(body))
        self.spans += sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        return Response(status=200, headers={}, body=b"")
