"""The X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`) read as W3C ids; stdlib only.

Follows the OpenTelemetry Python AWS X-Ray propagator: a malformed Root, Parent or Sampled
invalidates the whole header, unknown keys (Lineage, Self, …) are ignored. Two deliberate
tolerances: empty parts (a trailing ';') are skipped, and Parent may be absent, in which case
the trace id is still joined but there is no remote parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_ROOT_LENGTH: Final = 35
_PARENT_LENGTH: Final = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class XRayContext:
    """What a valid header says: the 128-bit trace id, the remote parent and the sampling decision."""

    trace_id: int
    parent_span_id: int | None = None
    sampled: bool | None = None


class _Invalid(ValueError):
    pass


def parse_xray_header(header: str) -> XRayContext | None:
    """The context carried by an X-Ray header, or None when the header is not valid."""
    try:
        return _parse(header)
    except _Invalid:
        return None


def _parse(header: str) -> XRayContext:
    trace_id: int | None = None
    parent_span_id: int | None = None
    sampled: bool | None = None
    for part in header.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise _Invalid(part)
        key, value = key.strip(), value.strip()
        if key == "Root":
            trace_id = _trace_id(value)
        elif key == "Parent":
            parent_span_id = _hex_id(value, _PARENT_LENGTH)
        elif key == "Sampled":
            sampled = _sampled(value)
    if trace_id is None:
        raise _Invalid("no Root")
    return XRayContext(trace_id=trace_id, parent_span_id=parent_span_id, sampled=sampled)


def _trace_id(root: str) -> int:
    # 1-<8 hex epoch seconds>-<24 hex random>: the W3C trace id is the two hex parts joined.
    if len(root) != _ROOT_LENGTH or root[0] != "1" or root[1] != "-" or root[10] != "-":
        raise _Invalid(root)
    return _hex_id(root[2:10] + root[11:], 32)


def _hex_id(text: str, length: int) -> int:
    if len(text) != length or not _HEX.fullmatch(text):
        raise _Invalid(text)
    value = int(text, 16)
    if value == 0:  # all-zero ids are invalid in W3C trace context
        raise _Invalid(text)
    return value


def _sampled(text: str) -> bool:
    if text not in ("0", "1"):
        raise _Invalid(text)
    return text == "1"
