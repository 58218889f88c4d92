"""The extension's own log: one JSON line per call on stdout, filtered by level, and never an exception."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from extension import log

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def defaults() -> Iterator[None]:
    yield
    log.configure()


def printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    assert out == "" or out.endswith("\n")
    return [json.loads(line) for line in out.splitlines()]


def test_a_line_is_one_json_object_with_our_keys_first(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info", extension_name="otel-extension")
    before = time.time()
    log.get().info("flushed", spans=3, duration_ms=1.5, error=None)

    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n")
    line = json.loads(out)
    assert list(line) == ["event", "level", "timestamp", "extension", "spans", "duration_ms", "error"]
    assert line == {"event": "flushed", "level": "info", "timestamp": line["timestamp"], "extension": "otel-extension",
                    "spans": 3, "duration_ms": 1.5, "error": None}
    assert ISO_UTC.match(line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before - 1e-6 <= stamped <= time.time()


def test_no_extension_key_until_a_name_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    log.get().warning("telemetry_unavailable")
    assert list(printed(capsys)[0]) == ["event", "level", "timestamp"]


@pytest.mark.parametrize(("now_ns", "expected"), [
    (0, "1970-01-01T00:00:00.000000Z"),  # whole seconds keep their six digits
    (1_000_000_999, "1970-01-01T00:00:01.000000Z"),  # nanoseconds truncated, never rounded up
    (1_796_363_136_123_456_789, "2026-12-04T05:45:36.123456Z"),
])
def test_the_timestamp_is_iso_utc_with_microseconds(now_ns: int, expected: str) -> None:
    assert log.timestamp(now_ns) == expected
    since_epoch = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_ns // 1000)
    assert since_epoch.isoformat(timespec="microseconds").replace("+00:00", "Z") == expected


def test_lines_below_the_level_are_not_written_nor_built(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[str] = []

    class Spy:
        def __str__(self) -> str:
            shown.append("rendered")
            return "spy"

    log.configure("warning")
    logger = log.get()
    logger.debug("metrics_flushed", value=Spy())
    logger.info("flushed", value=Spy())
    logger.warning("export_failed", value=Spy())
    logger.error("config_invalid")
    logger.exception("extension_failed")

    assert [(line["event"], line["level"]) for line in printed(capsys)] == [
        ("export_failed", "warning"), ("config_invalid", "error"), ("extension_failed", "error")]
    assert shown == ["rendered"]  # only the line that was written looked at its value


@pytest.mark.parametrize(("level", "shown"), [("debug", 4), ("info", 3), ("warning", 2), ("error", 1),
                                              ("verbose", 3)])  # an unknown level is info
def test_each_level_shows_itself_and_above(level: str, shown: int, capsys: pytest.CaptureFixture[str]) -> None:
    log.configure(level)
    logger = log.get()
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    assert [line["event"] for line in printed(capsys)] == ["d", "i", "w", "e"][4 - shown:]


def test_loggers_got_before_configure_follow_it(capsys: pytest.CaptureFixture[str]) -> None:
    early = log.get().bind(phase="init")
    log.configure("error", extension_name="late")
    early.info("hidden")
    early.error("shown")
    [line] = printed(capsys)
    assert (line["event"], line["extension"], line["phase"]) == ("shown", "late", "init")


def test_bind_adds_fields_to_every_line_of_that_logger_only(capsys: pytest.CaptureFixture[str]) -> None:
    bound = log.get().bind(signal="logs", attempts=1)
    again = bound.bind(attempts=2)
    bound.info("a", extra=True)
    again.info("b", attempts=3)
    log.get().info("c")

    a, b, c = printed(capsys)
    assert list(a)[3:] == ["signal", "attempts", "extra"] and (a["signal"], a["attempts"]) == ("logs", 1)
    assert (b["signal"], b["attempts"]) == ("logs", 3)  # the call's own value last
    assert list(c) == ["event", "level", "timestamp"]


def test_a_field_named_like_ours_does_not_replace_it(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure(extension_name="otel-extension")
    log.get().bind(extension="other").info("flushed", level="debug", timestamp="yesterday", spans=1)
    [line] = printed(capsys)
    assert (line["level"], line["extension"], line["spans"]) == ("info", "otel-extension", 1)
    assert ISO_UTC.match(line["timestamp"])


def test_exception_adds_the_formatted_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise ValueError("boom")

    try:
        fail()
    except ValueError:
        log.get().exception("extension_failed", mode="pass_through")

    out = capsys.readouterr().out
    assert out.count("\n") == 1  # the traceback's newlines are escaped inside the one line
    line = json.loads(out)
    assert list(line) == ["event", "level", "timestamp", "exception", "mode"]
    assert (line["event"], line["level"], line["mode"]) == ("extension_failed", "error", "pass_through")
    assert line["exception"].startswith("Traceback (most recent call last):\n")
    assert 'in fail\n    raise ValueError("boom")' in line["exception"]
    assert line["exception"].endswith("ValueError: boom")


def test_exception_outside_an_except_block_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    log.get().exception("odd")
    [line] = printed(capsys)
    assert line["level"] == "error" and "exception" not in line


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_values_orjson_cannot_serialise_become_text(capsys: pytest.CaptureFixture[str]) -> None:
    log.get().info("odd", names={"b"}, raw=b"\x00", error=ValueError("bad"), nested={"at": [{1, 2}, Unprintable()]},
                   by_status={503: 2}, moment=datetime(2026, 1, 2, tzinfo=UTC))
    [line] = printed(capsys)
    assert (line["names"], line["raw"], line["error"]) == ("{'b'}", "b'\\x00'", "bad")
    assert line["nested"] == {"at": ["{1, 2}", "<Unprintable that cannot be shown>"]}
    assert line["by_status"] == {"503": 2} and line["moment"] == "2026-01-02T00:00:00+00:00"


def test_values_orjson_refuses_outright_become_text_too(capsys: pytest.CaptureFixture[str]) -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    log.get().info("odd", huge=2**70, cycle=cycle, fine=1)
    [line] = printed(capsys)
    assert (line["huge"], line["cycle"], line["fine"]) == (str(2**70), "[[...]]", 1)
    assert line["event"] == "odd" and log.lost() == 0


@pytest.mark.parametrize("stdout", ["closed", "none", "broken_pipe"])
def test_a_broken_stdout_never_raises(stdout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream: io.TextIOBase | None = None
    if stdout == "closed":
        stream = io.StringIO()
        stream.close()
    elif stdout == "broken_pipe":
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone: writing gives EPIPE
        stream = open(write_end, "w")  # noqa: SIM115 -- closed below, after its failed flushes
    monkeypatch.setattr(sys, "stdout", stream)
    lost = log.lost()
    try:
        log.get().info("flushed")
        log.get().error("export_failed")
        try:
            raise RuntimeError("and while handling an exception")
        except RuntimeError:
            log.get().exception("extension_failed")
        assert log.lost() == lost + 3
    finally:
        if stdout == "broken_pipe" and stream is not None:
            with pytest.raises(BrokenPipeError):
                stream.close()  # what it still holds cannot be written either; closed all the same


def test_capture_records_every_level_and_restores_the_state(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("error", extension_name="otel-extension")
    with log.capture() as records:
        log.get().debug("metrics_flushed", windows=1)
        log.get().warning("export_failed", error={"not", "json"})
    log.get().info("hidden")
    log.get().error("shown")

    assert [(r["event"], r["level"], r["extension"]) for r in records] == [
        ("metrics_flushed", "debug", "otel-extension"), ("export_failed", "warning", "otel-extension")]
    assert records[1]["error"] in ("{'not', 'json'}", "{'json', 'not'}")  # as written: text, not a set
    assert [line["event"] for line in printed(capsys)] == ["shown"]
