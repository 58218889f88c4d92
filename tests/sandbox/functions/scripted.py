"""A function for the sandbox's tests, scripted by environment variables at init and by its event."""

import json
import logging
import os
import signal
import threading
import time
import urllib.request

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2020-01-01/extension"


def _internal_extension(name: str) -> None:
    """Register an extension from inside the runtime, as a runtime's own agent does, and loop on next."""
    request = urllib.request.Request(f"{API}/register", method="POST", headers={"Lambda-Extension-Name": name},
                                     data=json.dumps({"events": ["INVOKE"]}).encode())
    with urllib.request.urlopen(request) as response:
        identifier = response.headers["Lambda-Extension-Identifier"]

    def loop() -> None:
        while True:
            try:
                next_event = urllib.request.Request(f"{API}/event/next",
                                                    headers={"Lambda-Extension-Identifier": identifier})
                with urllib.request.urlopen(next_event) as answer:  # no timeout: a long poll
                    answer.read()
            except OSError:
                return

    threading.Thread(target=loop, daemon=True).start()


if os.environ.get("SCRIPTED_IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("SCRIPTED_INTERNAL_EXTENSION"):
    _internal_extension(os.environ["SCRIPTED_INTERNAL_EXTENSION"])
time.sleep(float(os.environ.get("SCRIPTED_INIT_SLEEP_S", "0")))


def handler(event: dict, context: object) -> dict:
    for line in event.get("print", []):
        print(line, flush=True)
    if "warn" in event:
        logging.getLogger().warning(event["warn"])
    return {"remaining_ms": context.get_remaining_time_in_millis()}  # type: ignore[attr-defined]
