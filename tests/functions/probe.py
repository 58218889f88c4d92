"""A test function that records when its init code ran and can misbehave on request."""

import json
import os
import time

INIT_LOG = os.environ.get("TEST_FN_LOG")
if INIT_LOG:
    with open(INIT_LOG, "a") as out:
        out.write(json.dumps({"kind": "function_init", "t": time.time()}) + "\n")
if os.environ.get("TEST_FN_INIT_FAIL"):
    raise RuntimeError("init failed on purpose")


def handler(event, context):
    if INIT_LOG:
        with open(INIT_LOG, "a") as out:
            out.write(json.dumps({"kind": "function_invoke", "t": time.time(),
                                  "request_id": context.aws_request_id}) + "\n")
    if "sleep_ms" in event:
        time.sleep(event["sleep_ms"] / 1000)
    for number in range(event.get("lines", 0)):
        print(f"line {number}")
    if event.get("big_response"):
        return "x" * (6 * 1024 * 1024 + 200)
    if event.get("json_log"):
        import logging
        logging.getLogger().warning("structured %s", "warning")
    return {"ok": True, "requestId": context.aws_request_id}
