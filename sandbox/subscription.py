"""Validation of a Telemetry API subscribe body against the documented bounds (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sandbox.platform_events import SCHEMA_VERSIONS

TYPES: Final = frozenset({"platform", "function", "extension"})
SANDBOX_HOSTS: Final = frozenset({"sandbox.localdomain", "sandbox"})
# (default, minimum, maximum) from telemetry-api-reference; the maxItems default follows the
# reference page (1,000) where the overview table says 10,000.
BOUNDS: Final = {
    "maxItems": (1_000, 1_000, 10_000),
    "maxBytes": (262_144, 262_144, 1_048_576),
    "timeoutMs": (1_000, 25, 30_000),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    schema_version: str
    types: frozenset[str]
    uri: str
    port: int
    path: str
    max_items: int
    max_bytes: int
    timeout_ms: int


class SubscriptionInvalid(ValueError):
    """The body breaks the schema; the message joins every problem with '; ' as Lambda does."""


def parse_subscription(body: Any) -> Subscription:
    problems: list[str] = []
    if not isinstance(body, dict):
        raise SubscriptionInvalid("request body must be a JSON object")
    schema = body.get("schemaVersion")
    if schema not in SCHEMA_VERSIONS:
        problems.append(f"schemaVersion must be one of {', '.join(SCHEMA_VERSIONS)}")
    types = body.get("types")
    if not isinstance(types, list) or not types:
        problems.append("types should not be empty")
        types = []
    elif not all(isinstance(kind, str) and kind in TYPES for kind in types):
        problems.append("types must be platform, function or extension")
    uri, port, path = _destination(body.get("destination"), problems)
    buffering = body.get("buffering", {})
    if not isinstance(buffering, dict):
        problems.append("buffering must be an object")
        buffering = {}
    values = {name: _bounded(buffering, name, problems) for name in BOUNDS}
    if problems:
        raise SubscriptionInvalid("; ".join(problems))
    return Subscription(schema_version=str(schema), types=frozenset(types), uri=uri, port=port, path=path,
                        max_items=values["maxItems"], max_bytes=values["maxBytes"],
                        timeout_ms=values["timeoutMs"])


def _destination(destination: Any, problems: list[str]) -> tuple[str, int, str]:
    if not isinstance(destination, dict):
        problems.append("destination is required")
        return "", 0, ""
    if destination.get("protocol") != "HTTP":
        # TCP is documented but unconfirmed in production and never acknowledged: only HTTP is served.
        problems.append("destination.protocol must be HTTP (TCP is not supported by this sandbox)")
    uri = destination.get("URI")
    if not isinstance(uri, str):
        problems.append("destination.URI is required")
        return "", 0, ""
    parts = urlsplit(uri)
    if parts.scheme != "http":
        problems.append("destination.URI scheme must be http")
    if parts.hostname not in SANDBOX_HOSTS:
        problems.append("destination.URI host must be sandbox.localdomain")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        problems.append("URI port is not provided")
    elif port == 9001:
        problems.append("destination.URI port 9001 is reserved by Lambda")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return uri, port or 0, path


def _bounded(buffering: dict[str, Any], name: str, problems: list[str]) -> int:
    default, low, high = BOUNDS[name]
    value = buffering.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"buffering.{name} must be an integer between {low} and {high}")
        return default
    return value
