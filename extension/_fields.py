"""Typed field readers for decoded JSON and a tolerant ISO-8601 parser; stdlib only.

Every reader raises Malformed, which the parsers in extension.wire turn into a count or a
ProtocolError: the wire is never trusted, but one bad field costs one item, not a batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()

# rapid writes `2006-01-02T15:04:05.000Z`; the docs also show `12:01:23:521Z` (':' before the millis).
# Accept 0-9 fractional digits, 'Z' or a numeric offset, and read a missing zone as UTC.
_ISO_8601: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,:](\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?"
)
# rapid's shape exactly. The millisecond and second tails are read by lookup: the tables hold only well-formed
# tails, so the lookup is the check.
_MILLI_NS: Final[dict[str, int]] = {f".{millis:03d}Z": millis * 1_000_000 for millis in range(1000)}
_SECOND_NS: Final[dict[str, int]] = {f":{second:02d}": second * 1_000_000_000 for second in range(60)}
_LAMBDA_MINUTE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})")


class Malformed(ValueError):
    """A JSON value does not have the shape the wire model needs."""


def parse_time_unix_nano(text: str) -> int:
    """Nanoseconds since the epoch for an ISO-8601 timestamp; exact, no float rounding."""
    fast = lambda_time_unix_nano(text)
    return _parse_iso_8601(text) if fast is None else fast


def lambda_time_unix_nano(text: str) -> int | None:
    """The same for the shape rapid writes; None for any other text, and for a field out of range (the general
    parser judges those, so that what is accepted and what each rejection says stay as they were)."""
    millis = _MILLI_NS.get(text[19:])
    if millis is None:
        return None
    second = _second_unix_nano(text[:19])
    return None if second is None else second + millis


# Under load a second holds thousands of events, so each second is read once, and its date and time once a minute;
# a few hundred seconds are more than any batch spans. Caches, not state: each result depends on the text alone.
@lru_cache(maxsize=256)
def _second_unix_nano(prefix: str) -> int | None:
    second = _SECOND_NS.get(prefix[16:])
    minute = _minute_unix_nano(prefix[:16])
    return None if second is None or minute is None else minute + second


@lru_cache(maxsize=64)
def _minute_unix_nano(prefix: str) -> int | None:
    match = _LAMBDA_MINUTE.fullmatch(prefix)
    if match is None:
        return None
    year, month, day, hour, minute = map(int, match.groups())
    if hour > 23 or minute > 59:
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:  # year 0, month 13, February 29th of a common year
        return None
    return ((days * 24 + hour) * 60 + minute) * 60_000_000_000


def _parse_iso_8601(text: str) -> int:
    match = _ISO_8601.fullmatch(text.strip())
    if match is None:
        raise Malformed(f"not an ISO-8601 time: {text!r}")
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        if sign == "-":
            offset = -offset
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset))
    except ValueError as exc:
        raise Malformed(f"not a valid time: {text!r}") from exc
    elapsed = moment - _EPOCH
    seconds = elapsed.days * 86_400 + elapsed.seconds
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


# The readers test for the exact type orjson gives first and return at once; anything else takes the strict checks.


def req_str(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if isinstance(value, str):
        return value
    raise Malformed(f"{key} is not a string")


def opt_str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Malformed(f"{key} is not a string")


def req_int(record: Mapping[str, Any], key: str) -> int:
    value = record.get(key)
    if type(value) is int:  # not isinstance: a bool is an int too, and never a count
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{key} is not an integer")
    return value


def opt_int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return value if value is None or type(value) is int else req_int(record, key)


def req_float(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key)
    if type(value) is float:
        return value
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Malformed(f"{key} is not a number")
    return float(value)


def opt_float(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    return value if value is None or type(value) is float else req_float(record, key)


def req_dict(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if isinstance(value, dict):
        return value
    raise Malformed(f"{key} is not an object")


def opt_dict(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The object under `key`, or an empty one when it is absent."""
    value = record.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise Malformed(f"{key} is not an object")


def str_list(record: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings under `key`; absent means empty."""
    value = record.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed(f"{key} is not a list of strings")
    return tuple(value)
