#!/bin/bash
# The runtime has no python3 (the layer is on a function of another runtime): say so once, then register for
# SHUTDOWN only and wait for it, so the function never notices us. Bash's /dev/tcp is the only HTTP client we can
# count on here.
name="$1"
api="$AWS_LAMBDA_RUNTIME_API"
printf '{"extension": "%s", "event": "layer_unusable", "level": "error", "reason": "the function has no python3 on PATH", "mode": "pass_through", "fix": "attach this layer to a Python 3.11-3.14 function"}\n' "$name"

# request METHOD PATH HEADER BODY: sends one request, leaves the answer on descriptor 3.
request() {
    exec 3<>"/dev/tcp/${api%:*}/${api##*:}" || exit 1
    printf '%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "/2020-01-01/extension/$2" "$api" "$3" "${#4}" "$4" >&3
}

request POST register "Lambda-Extension-Name: $name" '{"events": ["SHUTDOWN"]}'
identifier=""
while IFS= read -r line; do
    line="${line%$'\r'}"
    case "${line,,}" in
        lambda-extension-identifier:*) identifier="${line#*:}"; identifier="${identifier# }" ;;
        "") break ;;
    esac
done <&3
exec 3<&-
[ -n "$identifier" ] || exit 1

while true; do
    # Blocks for as long as the environment is frozen; the answer's body names the event.
    request GET event/next "Lambda-Extension-Identifier: $identifier" ""
    answer=""
    while IFS= read -r line || [ -n "$line" ]; do answer+="$line"; done <&3
    exec 3<&-
    case "$answer" in
        *'"SHUTDOWN"'*) exit 0 ;;
    esac
done
