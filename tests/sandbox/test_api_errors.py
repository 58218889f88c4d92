"""Every documented error answer of the Extensions, Telemetry and Runtime APIs, as a real extension sees it."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
from scripted import answers, scripted_layer
from support import MINIMAL_LAYER, SettingsFactory, read_log

from sandbox.runner import LocalLambda


def quiet(source: str, line: str) -> None:
    pass


async def probes(make_settings: SettingsFactory, tmp_path: Path, work_dir: Path) -> dict[str, dict[str, Any]]:
    log = tmp_path / "ext.jsonl"
    settings = make_settings(layer_dir=MINIMAL_LAYER, env={"TEST_EXT_LOG": str(log), "TEST_EXT_PROBE": "1",
                                                           "TEST_EXT_SUBSCRIBE": "platform"})
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        assert sandbox.init_record is not None and sandbox.init_record.status == "success"
        await sandbox.invoke(b'{"sleep_ms": 100}')
    return {entry["label"]: entry for entry in read_log(log) if entry["kind"] == "probe"}


async def test_documented_error_codes(make_settings: SettingsFactory, tmp_path: Path, work_dir: Path) -> None:
    seen = await probes(make_settings, tmp_path, work_dir)

    def answer(label: str) -> tuple[int, str]:
        return seen[label]["status"], seen[label]["body"].get("errorType", "")

    assert answer("register_empty_name") == (403, "Extension.InvalidExtensionName")
    assert answer("register_bad_json") == (403, "InvalidRequestFormat")
    assert answer("register_configuration_keys") == (403, "InvalidRequestFormat")
    assert answer("register_unknown_event") == (403, "Extension.InvalidEventType")
    assert answer("register_twice") == (403, "Extension.InvalidExtensionState")
    assert answer("register_internal_with_shutdown") == (403, "Extension.InvalidEventType")
    assert seen["register_internal"]["status"] == 200
    assert answer("next_missing_id") == (403, "Extension.MissingExtensionIdentifier")
    assert answer("next_invalid_id") == (403, "Extension.InvalidExtensionIdentifier")
    assert answer("next_unknown_id") == (403, "Extension.UnknownExtensionIdentifier")
    assert answer("init_error_missing_type") == (403, "Extension.MissingHeader")
    assert answer("subscribe_missing_id") == (403, "Extension.MissingExtensionIdentifier")
    assert answer("subscribe_twice")[0] == 500
    bounds = seen["subscribe_bad_bounds"]
    assert bounds["status"] == 400 and bounds["body"]["errorType"] == "ValidationError"
    assert "maxItems" in bounds["body"]["errorMessage"] and "timeoutMs" in bounds["body"]["errorMessage"]
    no_port = seen["subscribe_no_port"]["body"]["errorMessage"]
    assert "URI port is not provided" in no_port and "types should not be empty" in no_port
    assert seen["subscribe_bad_json"]["status"] == 400
    assert answer("register_after_init") == (403, "Extension.RegistrationClosed")
    assert answer("subscribe_after_init") == (403, "Telemetry.SubscriptionClosed")
    assert answer("response_unknown_request") == (400, "InvalidRequestID")


async def test_runtime_response_errors(make_settings: SettingsFactory, work_dir: Path) -> None:
    """413 for an oversized response, 403 for a second one: the function's own later answer is refused."""
    settings = make_settings(timeout_s=5.0)
    async with LocalLambda(settings, work_dir=work_dir, on_output=quiet) as sandbox:
        invoking = asyncio.create_task(sandbox.invoke(b'{"sleep_ms": 600}'))
        while sandbox.environment.current is None:
            await asyncio.sleep(0.01)
        request_id = sandbox.environment.current.request_id
        base = f"http://{sandbox.environment.runtime_api}/2018-06-01/runtime/invocation/{request_id}"
        async with aiohttp.ClientSession() as client:
            async with client.post(f"{base}/response", data=io.BytesIO(b"x" * (6 * 1024 * 1024 + 200))) as too_big:
                assert too_big.status == 413
                assert (await too_big.json())["errorType"] == "RequestEntityTooLarge"
            async with client.post(f"{base}/response", data=b'"first"') as first:
                assert first.status == 202 and await first.json() == {"status": "OK"}
            async with client.post(f"{base}/response", data=b'"second"') as second:
                assert second.status == 403
                assert (await second.json())["errorType"] == "InvalidStateTransition"
        record = await invoking
    # The client already has the first answer; awslambdaric exits when its own answer is refused.
    assert record.response == b'"first"'
    assert (record.status, record.error_type) == ("error", "Runtime.ExitError")


async def test_a_bad_subscribe_body_after_init_is_refused_as_closed(make_settings: SettingsFactory, tmp_path: Path,
                                                                    work_dir: Path) -> None:
    """Once init has ended a subscribe gets 403 Telemetry.SubscriptionClosed, whatever its body; during init a bad
    body gets 400 (test_documented_error_codes)."""
    log = tmp_path / "ext.jsonl"
    layer = scripted_layer(tmp_path, {"late": {"log": str(log), "probe_after_init": True}})
    async with LocalLambda(make_settings(layer_dir=layer), work_dir=work_dir, on_output=quiet) as sandbox:
        await sandbox.invoke()
    seen = answers(read_log(log))
    closed = {"errorType": "Telemetry.SubscriptionClosed", "errorMessage": "Telemetry API subscription is closed"}
    assert seen["subscribe_bad_json_after_init"] == (403, closed)
    assert seen["subscribe_bad_body_after_init"] == (403, closed)
