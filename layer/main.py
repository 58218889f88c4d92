"""Run by the layer's launcher with the runtime's python3: start the extension from the dependency set built for
this Python, or, when there is none, say so once and stay registered so the function never notices.

Standard library only, and syntax that any python3 still found on Lambda can read: this file runs before we
know which Python we got. It imports as little as it can on the way to the extension: the cold start is billed."""

from __future__ import annotations

import json
import os
import sys

HOME = os.path.dirname(os.path.abspath(__file__))
MACHINES = {"x86_64": "x86_64", "aarch64": "arm64"}


def machine() -> str:
    """The architecture in Lambda's words."""
    found = os.uname().machine
    return MACHINES.get(found, found)


def runtime() -> str:
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def log(name: str, event: str, **fields: object) -> None:
    """One JSON line, shaped like the extension's own log lines."""
    import datetime

    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")  # noqa: UP017
    line = {"extension": name, "event": event, "level": "error", "timestamp": stamp, **fields}
    print(json.dumps(line), flush=True)


def layer_stamp() -> dict[str, str]:
    try:
        with open(os.path.join(HOME, "layer.json")) as stamp:
            found: dict[str, str] = json.load(stamp)
            return found
    except (OSError, ValueError):
        return {}


def unusable(stamp: dict[str, str]) -> str | None:
    """Why this layer cannot run here, or None when it can."""
    built_for = f"{stamp.get('runtime', '?')} on {stamp.get('architecture', '?')}"
    if sys.implementation.name != "cpython" or not os.path.isdir(os.path.join(HOME, runtime())):
        return f"this layer is built for {built_for}; the function's Python is {sys.version.split()[0]}"
    if stamp.get("architecture", machine()) != machine():
        return f"this layer is built for {built_for}; the function runs on {machine()}"
    return None


def pass_through(name: str) -> int:
    """Register for SHUTDOWN only, so no invocation ever waits for us, and wait for it."""
    import urllib.request

    api = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the function's proxy is not for us
    # The scheme is spelled out at each call: http to the Runtime API, never a scheme taken from the environment.
    register = urllib.request.Request(f"http://{api}/2020-01-01/extension/register", method="POST",
                                      data=json.dumps({"events": ["SHUTDOWN"]}).encode(),
                                      headers={"Lambda-Extension-Name": name})
    with opener.open(register) as response:
        identifier = response.headers["Lambda-Extension-Identifier"]
    while True:
        # No timeout: next blocks for as long as the environment is frozen.
        following = urllib.request.Request(f"http://{api}/2020-01-01/extension/event/next",
                                           headers={"Lambda-Extension-Identifier": identifier})
        with opener.open(following) as response:
            if json.load(response).get("eventType") == "SHUTDOWN":
                return 0


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else os.path.basename(HOME)
    stamp = layer_stamp()
    problem = unusable(stamp)
    if problem is None:
        sys.path.insert(0, os.path.join(HOME, runtime()))
        try:
            from extension.cli import main as run
        except ImportError as error:  # a damaged or mismatched layer: the function must not pay for it
            problem = f"the extension cannot be imported: {error}"
        else:
            return run([name])
    log(name, "layer_unusable", reason=problem, version=stamp.get("version", "?"), mode="pass_through",
        fix=f"attach the {name} layer built for {runtime()} on {machine()}; telemetry is off until then")
    return pass_through(name)


if __name__ == "__main__":
    raise SystemExit(main())
