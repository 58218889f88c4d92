"""Telemetry delivery: batching bounds, drops when the consumer lags, nothing sent while frozen,
JSON log records by schema version."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from scripted import scripted_layer
from support import MINIMAL_LAYER, SettingsFactory, read_log, telemetry_events

from sandbox.runner import LocalLambda

SCRIPTED_FUNCTIONS = Path(__file__).parent / "functions"


def quiet(source: str, line: str) -> None:
    pass


async def run(make_settings: SettingsFactory, tmp_path: Path, work_dir: Path, payloads: list[dict[str, Any]],
              buffering: dict[str, int], handler: str = "probe.handler", **env: str) -> list[dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "ext.jsonl"
    function = {"function_dir": SCRIPTED_FUNCTIONS} if handler.startswith("scripted.") else {}
    settings = make_settings(layer_dir=MINIMAL_LAYER, timeout_s=10.0, handler=handler, **function, env={
        "TEST_EXT_LOG": str(log), "TEST_EXT_SUBSCRIBE": "platform,function",
        "TEST_EXT_BUFFERING": json.dumps(buffering), "TEST_EXT_SHUTDOWN_MS": "500",
        "TEST_EXT_POST_INVOKE_MS": "100", **env})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        for payload in payloads:
            await sandbox.invoke(json.dumps(payload).encode())
    return read_log(log)


def function_lines(events: list[dict[str, Any]]) -> list[str]:
    return [e["record"] for e in events if e["type"] == "function" and str(e["record"]).startswith("line ")]


def dropped(events: list[dict[str, Any]]) -> int:
    return sum(e["record"]["droppedRecords"] for e in events if e["type"] == "platform.logsDropped")


async def test_batches_close_at_max_items(make_settings: SettingsFactory, tmp_path: Path, work_dir: Path) -> None:
    log = await run(make_settings, tmp_path, work_dir, [{"lines": 2500}],
                    {"maxItems": 1000, "maxBytes": 1_048_576, "timeoutMs": 30_000})
    batches = [entry["events"] for entry in log if entry["kind"] == "batch"]
    # Platform events are never dropped and may ride along beyond a full batch of records.
    assert all(sum(e["type"] == "function" for e in batch) <= 1000 for batch in batches)
    events = telemetry_events(log)
    assert len(function_lines(events)) + dropped(events) == 2500


async def test_batches_close_at_max_bytes(make_settings: SettingsFactory, tmp_path: Path, work_dir: Path) -> None:
    log = await run(make_settings, tmp_path, work_dir, [{"lines": 300}],
                    {"maxItems": 10_000, "maxBytes": 262_144, "timeoutMs": 30_000},
                    TEST_EXT_LISTENER_DELAY_MS="0")
    batches = [entry["events"] for entry in log if entry["kind"] == "batch"]
    largest_event = max(len(json.dumps(e, separators=(",", ":"))) for b in batches for e in b)
    assert all(len(json.dumps(b, separators=(",", ":"))) <= 262_144 + largest_event + 2 for b in batches)


async def test_batch_is_sent_after_timeout_ms(make_settings: SettingsFactory, tmp_path: Path,
                                              work_dir: Path) -> None:
    log_path = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env={
        "TEST_EXT_LOG": str(log_path), "TEST_EXT_SUBSCRIBE": "platform,function", "TEST_EXT_SHUTDOWN_MS": "300",
        "TEST_EXT_POST_INVOKE_MS": "800", "TEST_EXT_BUFFERING": json.dumps({"timeoutMs": 300})})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
        shutdown_started = time.time()
    batches = [entry for entry in read_log(log_path) if entry["kind"] == "batch"]
    # At SHUTDOWN the platform sends what it holds at once; before it, every batch waits for its timeout.
    before_shutdown = [batch for batch in batches if batch["t"] < shutdown_started]
    assert before_shutdown
    for batch in before_shutdown:
        # A batch opens at its first event and leaves timeoutMs later (times carry milliseconds only).
        opened = min(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
                     for e in batch["events"])
        assert 0.298 <= batch["t"] - opened < 1.0


async def test_a_lagging_consumer_loses_records_and_is_told(make_settings: SettingsFactory, tmp_path: Path,
                                                            work_dir: Path) -> None:
    log = await run(make_settings, tmp_path, work_dir, [{"lines": 5000}],
                    {"maxItems": 1000, "maxBytes": 262_144, "timeoutMs": 25}, TEST_EXT_LISTENER_DELAY_MS="300",
                    TEST_EXT_SHUTDOWN_MS="1500")
    events = telemetry_events(log)
    assert dropped(events) > 0
    assert len(function_lines(events)) + dropped(events) == 5000
    reasons = {e["record"]["reason"] for e in events if e["type"] == "platform.logsDropped"}
    assert reasons == {"Some logs were dropped because the downstream consumer is slower than the logs production rate"}
    # Platform events survive: every invocation's runtimeDone arrived.
    assert sum(e["type"] == "platform.runtimeDone" for e in events) == 1


async def test_nothing_is_delivered_while_frozen(make_settings: SettingsFactory, tmp_path: Path,
                                                 work_dir: Path) -> None:
    log_path = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env={
        "TEST_EXT_LOG": str(log_path), "TEST_EXT_SUBSCRIBE": "platform", "TEST_EXT_SHUTDOWN_MS": "300",
        "TEST_EXT_BUFFERING": json.dumps({"timeoutMs": 25})})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        first = await sandbox.invoke()
        await asyncio.sleep(0.3)
        before_thaw = telemetry_events(read_log(log_path))
        await sandbox.invoke()
    # The report of the first invocation is produced after the freeze and waits for the thaw.
    assert not any(e["type"] == "platform.report" and e["record"]["requestId"] == first.request_id
                   for e in before_thaw)
    reports = [e for e in telemetry_events(read_log(log_path)) if e["type"] == "platform.report"]
    assert reports[0]["record"]["requestId"] == first.request_id


async def test_json_log_records_need_schema_2022_12_13(make_settings: SettingsFactory, tmp_path: Path,
                                                       work_dir: Path) -> None:
    new = await run(make_settings, tmp_path / "new", work_dir, [{"json_log": True}],
                    {"timeoutMs": 25}, AWS_LAMBDA_LOG_FORMAT="JSON")
    old = await run(make_settings, tmp_path / "old", work_dir, [{"json_log": True}],
                    {"timeoutMs": 25}, AWS_LAMBDA_LOG_FORMAT="JSON", TEST_EXT_SCHEMA="2022-07-01")
    [new_record] = [e["record"] for e in telemetry_events(new) if e["type"] == "function"]
    [old_record] = [e["record"] for e in telemetry_events(old) if e["type"] == "function"]
    assert new_record["level"] in ("WARN", "WARNING") and new_record["message"] == "structured warning"
    assert "requestId" in new_record and "timestamp" in new_record
    assert isinstance(old_record, str) and json.loads(old_record)["message"] == "structured warning"


async def test_json_records_need_the_json_log_format(make_settings: SettingsFactory, tmp_path: Path,
                                                     work_dir: Path) -> None:
    """In the Text log format every line is a string record, even one that happens to be a JSON object."""
    line = '{"message": "looks like JSON", "level": "INFO"}'
    payload = {"print": [line], "warn": "plain warning"}
    text = await run(make_settings, tmp_path / "text", work_dir, [payload], {"timeoutMs": 25},
                     handler="scripted.handler", AWS_LAMBDA_LOG_FORMAT="Text")
    json_format = await run(make_settings, tmp_path / "json", work_dir, [payload], {"timeoutMs": 25},
                            handler="scripted.handler", AWS_LAMBDA_LOG_FORMAT="JSON")
    text_records = [e["record"] for e in telemetry_events(text) if e["type"] == "function"]
    json_records = [e["record"] for e in telemetry_events(json_format) if e["type"] == "function"]
    assert line in text_records
    assert all(isinstance(record, str) for record in text_records)
    assert any("plain warning" in record for record in text_records)
    assert {"message": "looks like JSON", "level": "INFO"} in json_records
    [warning] = [r for r in json_records if isinstance(r, dict) and r.get("message") == "plain warning"]
    assert warning["level"] in ("WARN", "WARNING") and "requestId" in warning and "timestamp" in warning


async def test_extension_output_reaches_a_subscriber_of_extension_records(make_settings: SettingsFactory,
                                                                          tmp_path: Path, work_dir: Path) -> None:
    log = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"talker": {"log": str(log), "subscribe": ["extension"],
                                                 "print": ["talker says hello"], "shutdown_ms": 300}})
    settings = make_settings(layer_dir=layer, function_dir=SCRIPTED_FUNCTIONS, handler="scripted.handler")
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        record = await sandbox.invoke(json.dumps({"print": ["the function speaks"]}).encode())
    events = telemetry_events(read_log(log))
    assert {e["type"] for e in events} == {"extension"}  # neither platform events nor function output
    assert [e["record"] for e in events] == ["talker says hello", f"talker says hello {record.request_id}"]


async def test_a_failed_delivery_is_dropped_and_reported(make_settings: SettingsFactory, tmp_path: Path,
                                                         work_dir: Path) -> None:
    """The listener answers 500 to every batch holding function records: after the retries the batch is dropped
    and the next delivery says so in platform.logsDropped."""
    log_path = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"picky": {"log": str(log_path), "subscribe": ["platform", "function"],
                                                "refuse": "function", "post_invoke_ms": 1000, "shutdown_ms": 300}})
    settings = make_settings(layer_dir=layer, function_dir=SCRIPTED_FUNCTIONS, handler="scripted.handler")
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke(json.dumps({"print": [f"line {n}" for n in range(5)]}).encode())
    log = read_log(log_path)
    refused = {json.dumps(entry["events"]): entry["events"] for entry in log if entry["kind"] == "refused"}
    delivered = telemetry_events(log)
    reports = [e["record"] for e in delivered if e["type"] == "platform.logsDropped"]
    assert refused and not any(e["type"] == "function" for e in delivered)
    assert sum(len(batch) for batch in refused.values()) == sum(r["droppedRecords"] for r in reports)
    assert all(r["reason"] == "could not send events: HTTP 500" for r in reports)
    # Each refused batch was tried once and retried three times.
    assert sum(entry["kind"] == "refused" for entry in log) == 4 * len(refused)
