"""Sample Lambda handlers for the local sandbox: one succeeds, one raises, one times out, one logs a lot,
and `mixed` does any of these as its event asks, so one environment can show them all."""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def succeed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("handling request %s", context.aws_request_id)
    return {"statusCode": 200, "body": "ok", "requestId": context.aws_request_id}


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError(f"sample failure for request {context.aws_request_id}")


def time_out(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Sleep past the deadline in small steps, as a handler stuck on a slow dependency would.
    while context.get_remaining_time_in_millis() > -1000:
        time.sleep(0.05)
    return {"statusCode": 200, "body": "too late"}


def chatty(event: dict[str, Any], context: Any) -> dict[str, Any]:
    lines = int(event.get("lines", 10_000))
    for number in range(lines):
        print(f"log line {number} of {lines}")
    return {"statusCode": 200, "lines": lines}


def mixed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action", "succeed")
    handlers = {"succeed": succeed, "fail": fail, "time_out": time_out, "chatty": chatty}
    if "sleep_ms" in event:
        time.sleep(event["sleep_ms"] / 1000)
    return handlers[action](event, context)
