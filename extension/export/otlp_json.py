"""OTLP/JSON both ways: proto3 JSON, except that trace and span ids are hex where proto3 JSON writes base64."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Final, TypeVar

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import Message  # type: ignore[import-untyped]

from extension.errors import BadOTLPBody

# These bytes fields sit at different depths per signal (spans, links, log records, exemplars), but only ever as
# field names (attribute keys live in {"key": ..., "value": ...} objects), so a walk over the keys finds exactly
# them. Both spellings, since ParseDict accepts both.
_ID_KEYS: Final = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})

M = TypeVar("M", bound=Message)


def to_document(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of a message: camelCase keys, enums as integers, ids as hex."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    converted: dict[str, Any] = _map_ids(document, _base64_to_hex)
    return converted


def from_document(document: object, message: M) -> M:
    """Fill `message` from an OTLP/JSON document (hex ids, enums as integers or names, unknown fields ignored);
    BadOTLPBody when it is not one."""
    if not isinstance(document, dict):
        raise BadOTLPBody("invalid OTLP/JSON body: not an object")
    try:
        json_format.ParseDict(_map_ids(document, _hex_to_base64), message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadOTLPBody(f"invalid OTLP/JSON body: {exc}") from None
    return message


def _map_ids(node: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {
            key: convert(value) if key in _ID_KEYS and isinstance(value, str) else _map_ids(value, convert)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_map_ids(item, convert) for item in node]
    return node


def _hex_to_base64(value: str) -> str:
    # ParseDict reads bytes fields as base64 text only, so the hex is re-encoded rather than decoded.
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadOTLPBody(f"invalid hex id {value!r}") from None
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:
        raise BadOTLPBody(f"invalid base64 id {value!r}") from None
