"""The events the sandbox generates have the shapes of the documented examples: the same fields with
the same JSON types, optional fields (marked `?` in the schema reference) only where they apply."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import MINIMAL_LAYER, SettingsFactory, read_log, telemetry_events

from sandbox import platform_events as pe
from sandbox.runner import LocalLambda
from sandbox.subscription import SubscriptionInvalid, parse_subscription

EXAMPLES = {e["type"]: e for e in json.loads((Path(__file__).parent / "reference_events.json").read_text())}
# Documented optional fields, and fields the examples leave out but the schema reference lists.
OPTIONAL = {
    "platform.initStart": {"instanceId", "instanceMaxMemory", "runtimeVersion", "runtimeVersionArn", "tracing"},
    "platform.initRuntimeDone": {"errorType", "spans", "tracing"},
    "platform.initReport": {"errorType", "spans", "tracing"},
    "platform.start": {"version", "tracing"},
    "platform.runtimeDone": {"errorType", "metrics", "spans", "tracing"},
    "platform.report": {"errorType", "spans", "tracing", "initDurationMs"},
    "platform.extension": {"errorType"},
}
ANYWHERE = {"spanId"}  # TraceContext.spanId is optional in every event
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_type(value: Any) -> str:
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def check_shape(ours: Any, documented: Any, optional: set[str], where: str) -> None:
    assert json_type(ours) == json_type(documented), where
    if isinstance(documented, dict):
        for key in documented.keys() - optional:
            assert key in ours, f"{where}.{key} missing"
        for key, value in ours.items():
            assert key in documented or key in optional, f"{where}.{key} is not documented"
            if key in documented:
                check_shape(value, documented[key], optional, f"{where}.{key}")
    elif isinstance(documented, list) and documented and ours:
        for item in ours:
            check_shape(item, documented[0], optional, f"{where}[]")


async def test_generated_events_match_the_documented_examples(make_settings: SettingsFactory, tmp_path: Path,
                                                              work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, timeout_s=10.0, env={
        "TEST_EXT_LOG": str(log), "TEST_EXT_SUBSCRIBE": "platform,function",
        "TEST_EXT_BUFFERING": json.dumps({"timeoutMs": 25}), "TEST_EXT_LISTENER_DELAY_MS": "100",
        "TEST_EXT_SHUTDOWN_MS": "1500"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=lambda source, line: None) as sandbox:
        await sandbox.invoke(b'{"lines": 3000}',
                             trace_header="Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1")
        await sandbox.invoke(b'{"lines": 1}')
    events = telemetry_events(read_log(log))
    seen = {event["type"] for event in events}
    assert seen >= set(EXAMPLES), f"not generated: {set(EXAMPLES) - seen}"
    for event in events:
        assert TIME.match(event["time"]), event["time"]
        documented = EXAMPLES[event["type"]]
        optional = OPTIONAL.get(event["type"], set()) | ANYWHERE
        check_shape(event["record"], documented["record"], optional, event["type"])
        for span in event["record"].get("spans", []) if isinstance(event["record"], dict) else []:
            assert TIME.match(span["start"])


def test_time_format_and_durations() -> None:
    assert pe.iso_time(1654468766.6189) == "2022-06-05T22:39:26.618Z"
    assert pe.iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert pe.duration_ms(1.0, 1.0086869) == 8.686  # truncated to microseconds
    assert pe.duration_ms(2.0, 1.0) == 0.0


def test_billed_duration_rounds_up() -> None:
    record = pe.report(0, request_id="r", status="success", error_type=None, duration=11.642, memory_mb=128,
                       max_memory_used_mb=60, init_duration=None, spans=[], trace=None).record
    assert isinstance(record, dict)
    assert record["metrics"]["billedDurationMs"] == 12 and "initDurationMs" not in record["metrics"]


def test_json_records_only_from_schema_2022_12_13() -> None:
    event = pe.log_line(0, source="function", line='{"message": "hi"}', json_record={"message": "hi"})
    assert event.envelope("2022-07-01")["record"] == '{"message": "hi"}'
    assert event.envelope("2022-12-13")["record"] == {"message": "hi"}
    assert event.envelope("2025-01-29")["record"] == {"message": "hi"}


def subscription(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemaVersion": "2022-12-13", "types": ["platform"],
                            "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
                            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/path"}}
    body.update(changes)
    return body


def test_subscription_defaults_and_path() -> None:
    parsed = parse_subscription({**subscription(), "buffering": {}})
    assert (parsed.max_items, parsed.max_bytes, parsed.timeout_ms) == (1000, 262144, 1000)
    assert (parsed.port, parsed.path) == (4243, "/path")


@pytest.mark.parametrize(("changes", "message"), [
    ({"schemaVersion": "2021-01-01"}, "schemaVersion"),
    ({"types": []}, "types should not be empty"),
    ({"types": ["platform", "metrics"]}, "types must be"),
    ({"buffering": {"maxItems": 999}}, "buffering.maxItems"),
    ({"buffering": {"maxItems": 10001}}, "buffering.maxItems"),
    ({"buffering": {"maxBytes": 262143}}, "buffering.maxBytes"),
    ({"buffering": {"maxBytes": 1048577}}, "buffering.maxBytes"),
    ({"buffering": {"timeoutMs": 24}}, "buffering.timeoutMs"),
    ({"buffering": {"timeoutMs": 30001}}, "buffering.timeoutMs"),
    ({"buffering": {"timeoutMs": True}}, "buffering.timeoutMs"),
    ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/x"}}, "URI port is not provided"),
    ({"destination": {"protocol": "HTTP", "URI": "http://example.com:80/x"}}, "host must be sandbox.localdomain"),
    ({"destination": {"protocol": "HTTP", "URI": "https://sandbox:4243"}}, "scheme must be http"),
    ({"destination": {"protocol": "HTTP", "URI": "http://sandbox:9001"}}, "reserved"),
    ({"destination": {"protocol": "TCP", "URI": "http://sandbox:4243"}}, "protocol must be HTTP"),
])
def test_subscription_bounds(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SubscriptionInvalid, match=message):
        parse_subscription(subscription(**changes))


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(SubscriptionInvalid) as caught:
        parse_subscription(subscription(types=[], buffering={"timeoutMs": 1}))
    assert str(caught.value).split("; ") == ["types should not be empty",
                                             "buffering.timeoutMs must be an integer between 25 and 30000"]
