#!/usr/bin/env python3
"""An external extension for the sandbox's tests, scripted by the JSON file `<layer>/<its file name>.json`.

Keys, all optional:
  log               file to append one JSON line per step to
  internal          register this many internal extensions from this process, each looping on next
  init_error        after registering, report this init error type, try next once more, then exit
  subscribe         telemetry types; the listener logs each batch ("batch") or refused one ("refused")
  buffering         the subscription's buffering object
  refuse            a record type: the listener answers 500 to every batch that holds one
  print             lines printed on stdout once subscribed, and with the request id on each INVOKE
  exit_error        on the first INVOKE, report this exit error type, then exit
  probe_after_init  on the first INVOKE, subscribe again with bad bodies
  post_invoke_ms    wait this long after each INVOKE before calling next
  shutdown_ms       wait this long on SHUTDOWN before exiting
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

RUNTIME_API = os.environ["AWS_LAMBDA_RUNTIME_API"]
EXTENSION_API = f"http://{RUNTIME_API}/2020-01-01/extension"
TELEMETRY_API = f"http://{RUNTIME_API}/2022-07-01/telemetry"
NAME = os.path.basename(sys.argv[0])
CONFIG = json.loads((Path(sys.argv[0]).parent.parent / f"{NAME}.json").read_text())
lock = threading.Lock()


def log(kind, **fields):
    if "log" in CONFIG:
        with lock, open(CONFIG["log"], "a") as out:
            out.write(json.dumps({"kind": kind, "name": NAME, "t": time.time(), **fields}) + "\n")


def call(method, url, headers, body=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:  # no timeout: next is a long poll
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def answered(label, status, body):
    log("answer", label=label, status=status, body=json.loads(body) if body else None)


def register(name, events):
    return call("POST", f"{EXTENSION_API}/register", {"Lambda-Extension-Name": name},
                json.dumps({"events": events}).encode())


def next_event(identifier):
    return call("GET", f"{EXTENSION_API}/event/next", {"Lambda-Extension-Identifier": identifier})


def loop_on_next(identifier):
    while True:
        try:
            next_event(identifier)
        except OSError:
            return


def report_error(kind, identifier, error_type):
    body = json.dumps({"errorMessage": "scripted failure", "errorType": error_type, "stackTrace": []}).encode()
    status, _, answer = call("POST", f"{EXTENSION_API}/{kind}/error", {
        "Lambda-Extension-Identifier": identifier, "Lambda-Extension-Function-Error-Type": error_type}, body)
    answered(f"{kind}_error", status, answer)


def subscribe(identifier, body):
    status, _, answer = call("PUT", TELEMETRY_API, {"Lambda-Extension-Identifier": identifier,
                                                    "Content-Type": "application/json"}, body)
    return status, answer


class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        refused = any(event["type"] == CONFIG.get("refuse") for event in events)
        self.send_response(500 if refused else 200)
        self.end_headers()
        log("refused" if refused else "batch", events=events)

    def log_message(self, *args):
        pass  # never print here: the extension may be subscribed to its own output


def say(suffix=""):
    for line in CONFIG.get("print", []):
        print(f"{line}{suffix}", flush=True)


def main():
    _, headers, _ = register(NAME, ["INVOKE", "SHUTDOWN"])
    identifier = headers["Lambda-Extension-Identifier"]
    log("registered")
    for number in range(CONFIG.get("internal", 0)):
        status, headers, answer = register(f"{NAME}-internal-{number}", ["INVOKE"])
        answered(f"internal_{number}", status, answer)
        if status == 200:
            threading.Thread(target=loop_on_next, args=(headers["Lambda-Extension-Identifier"],), daemon=True).start()
    if "init_error" in CONFIG:
        report_error("init", identifier, CONFIG["init_error"])
        status, _, answer = next_event(identifier)
        answered("next_after_init_error", status, answer)
        sys.exit(1)  # "The extension should exit after it receives the response."
    if "subscribe" in CONFIG:
        server = http.server.ThreadingHTTPServer(("sandbox.localdomain", 0), Listener)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        subscription = {"schemaVersion": "2022-12-13", "types": CONFIG["subscribe"],
                        "buffering": CONFIG.get("buffering", {"timeoutMs": 25}),
                        "destination": {"protocol": "HTTP",
                                        "URI": f"http://sandbox.localdomain:{server.server_address[1]}/telemetry"}}
        answered("subscribe", *subscribe(identifier, json.dumps(subscription).encode()))
    say()
    invokes = 0
    while True:
        _, _, body = next_event(identifier)
        event = json.loads(body)
        log("event", event=event)
        if event["eventType"] == "SHUTDOWN":
            time.sleep(CONFIG.get("shutdown_ms", 0) / 1000)
            sys.exit(0)
        invokes += 1
        say(f" {event['requestId']}")
        if invokes == 1 and "exit_error" in CONFIG:
            report_error("exit", identifier, CONFIG["exit_error"])
            sys.exit(1)
        if invokes == 1 and CONFIG.get("probe_after_init"):
            bad_bounds = {"schemaVersion": "2022-12-13", "types": ["platform"], "buffering": {"maxItems": 1},
                          "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/no-port"}}
            answered("subscribe_bad_json_after_init", *subscribe(identifier, b"["))
            answered("subscribe_bad_body_after_init", *subscribe(identifier, json.dumps(bad_bounds).encode()))
        time.sleep(CONFIG.get("post_invoke_ms", 0) / 1000)


if __name__ == "__main__":
    main()
