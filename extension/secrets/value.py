"""The headers a fetched secret value stands for: pure; no message ever quotes the value or a part of it."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import unquote

import orjson

from extension.secrets.protocol import Failure
from extension.secrets.settings import HEADER_NAME

_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL: Final = re.compile(r"[\r\n\0]")


def headers_from_value(value: str, *, json_key: str | None, header_name: str | None) -> dict[str, str] | Failure:
    """With `json_key`, the value is a JSON object and that key's string is used; with `header_name`, the
    text is that header's value, else a `k=v,k2=v2` list, percent-decoded as OTEL_EXPORTER_OTLP_HEADERS."""
    text = value
    if json_key is not None:
        found = _json_string(value, json_key)
        if isinstance(found, Failure):
            return found
        text = found
    if header_name is not None:
        text = text.strip()  # a value pasted into a console often ends with a newline
        if not text:
            return Failure(code="InvalidHeaders", message=f"the value for header {header_name} is empty")
        if _CONTROL.search(text):
            return Failure(code="InvalidHeaders", message=f"the value for header {header_name} has control characters")
        return {header_name.lower(): text}
    return _header_list(text)


def _json_string(value: str, key: str) -> str | Failure:
    try:
        document: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        # orjson's message quotes the text around the error, so it is not passed on.
        return Failure(code="NotJsonObject", message=f"the value is not JSON, so it has no key {key!r}")
    if not isinstance(document, dict):
        return Failure(code="NotJsonObject", message=f"the value is not a JSON object, so it has no key {key!r}")
    if key not in document:
        return Failure(code="JsonKeyMissing", message=f"the JSON object has no key {key!r}")
    found = document[key]
    if not isinstance(found, str):
        return Failure(code="JsonValueNotString", message=f"the value of key {key!r} is not a string")
    return found


def _header_list(text: str) -> dict[str, str] | Failure:
    headers: dict[str, str] = {}
    problems: list[str] = []
    for index, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, raw = entry.partition("=")
        try:
            name, decoded = unquote(key.strip(), errors="strict"), unquote(raw.strip(), errors="strict")
        except UnicodeDecodeError:
            problems.append(f"entry {index} is not valid percent-encoded UTF-8")
            continue
        # A value with no "=" is most likely a bare API key, so the entry is never quoted, not even its name.
        if not sep or not name:
            problems.append(f"entry {index} is not key=value (for a bare value, set {HEADER_NAME})")
        elif not _HEADER_NAME.fullmatch(name):
            problems.append(f"entry {index} does not have a valid header name")
        elif _CONTROL.search(decoded):
            problems.append(f"entry {index} ({name}) has a value with control characters")
        else:
            headers[name.lower()] = decoded
    if problems:
        return Failure(code="InvalidHeaders", message="; ".join(problems))
    if not headers:
        return Failure(code="InvalidHeaders", message="the value holds no headers")
    return headers
