"""ISO times: the fast path for the shape Lambda writes agrees with the general parser on everything it accepts,
and leaves everything else (other shapes, fields out of range) to it, so accepted values and rejections stay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extension._fields import Malformed, _parse_iso_8601, lambda_time_unix_nano, parse_time_unix_nano

MANY = settings(max_examples=2000, deadline=None, database=None)


def outcome(parse: Callable[[str], int], text: str) -> int | str:
    """A time, or the message of the rejection."""
    try:
        return parse(text)
    except Malformed as exc:
        return f"Malformed: {exc}"


def assert_as_before(text: str) -> None:
    """The general parser is the parser as it was before the fast path: what it makes of `text` still holds."""
    fast = lambda_time_unix_nano(text)
    assert fast is None or fast == _parse_iso_8601(text)
    assert outcome(parse_time_unix_nano, text) == outcome(_parse_iso_8601, text)


def lambda_time(year: int, month: int, day: int, hour: int, minute: int, second: int, millis: int) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


# Every field from zero to its widest, so that most draws are out of range somewhere: month 13, hour 24, minute 60.
@MANY
@given(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
       st.integers(0, 99), st.integers(0, 999))
@example(2024, 2, 29, 0, 0, 0, 0).via("leap year")
@example(2023, 2, 29, 0, 0, 0, 0).via("common year")
@example(1900, 2, 29, 0, 0, 0, 0).via("a century is a common year")
@example(2000, 2, 29, 23, 59, 59, 999).via("every 400th year is a leap year")
@example(0, 1, 1, 0, 0, 0, 0).via("there is no year 0")
@example(1, 1, 1, 0, 0, 0, 0).via("the first day datetime knows")
@example(9999, 12, 31, 23, 59, 59, 999).via("the last")
@example(1969, 12, 31, 23, 59, 59, 999).via("before the epoch")
@example(2016, 12, 31, 23, 59, 60, 0).via("a leap second")
@example(2024, 5, 20, 24, 0, 0, 0).via("hour 24")
def test_lambda_shaped_times_in_and_out_of_range(year: int, month: int, day: int, hour: int, minute: int,
                                                 second: int, millis: int) -> None:
    text = lambda_time(year, month, day, hour, minute, second, millis)

    assert_as_before(text)
    try:
        expected = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        assert lambda_time_unix_nano(text) is None
        with pytest.raises(Malformed):
            parse_time_unix_nano(text)
    else:  # in range: the fast path takes it, exactly
        seconds = int((expected - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
        assert lambda_time_unix_nano(text) == seconds * 1_000_000_000 + millis * 1_000_000


# Shapes around Lambda's that only the general parser reads: other fractions, zones, separators, padding.
fractions = st.sampled_from(["", ".", ","]) | st.builds(
    lambda separator, digits: separator + digits, st.sampled_from([".", ",", ":"]),
    st.text(alphabet="0123456789", min_size=1, max_size=10))
zones = st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+02:00", "-0430", "+14", "+24:00", "-99:99", "UTC"])


@MANY
@given(st.datetimes(), st.sampled_from("Tt x"), fractions, zones, st.sampled_from(["", " ", "\n", "\t "]),
       st.sampled_from(["", " ", "\n"]))
@example(datetime(2022, 10, 12, 0, 0, 15), "T", ".064", "Z", "", "").via("Lambda's own")
@example(datetime(2022, 10, 12, 0, 0, 15), "T", ".06", "Z", "", "").via("two digits")
@example(datetime(2022, 10, 12, 0, 0, 15), "T", ".0640", "Z", "", "").via("four digits")
@example(datetime(2022, 8, 2, 12, 1, 23), "T", ":521", "Z", "", "").via("the documentation's colon")
@example(datetime(1, 1, 1), "T", ".000", "+00:01", "", "").via("before year 1 in UTC")
@example(datetime(9999, 12, 31, 23, 59, 59), "T", ".999", "-00:01", "", "").via("after 9999 in UTC")
def test_other_shapes_read_as_before(moment: datetime, separator: str, fraction: str, zone: str, before: str,
                                     after: str) -> None:
    date, time = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}", moment.strftime("%H:%M:%S")
    text = before + date + separator + time + fraction + zone + after

    assert_as_before(text)


@pytest.mark.parametrize("digits", [0, 1, 2, 3, 4, 6, 9, 10])
@pytest.mark.parametrize("zone", ["Z", "z", "", "+00:00", "+01:00", "-0130"])
def test_fractional_digits_other_than_three_and_other_zones(digits: int, zone: str) -> None:
    fraction = "." + "8765432109"[:digits] if digits else ""
    text = "2024-05-20T16:29:45" + fraction + zone

    assert_as_before(text)
    assert (lambda_time_unix_nano(text) is not None) == (digits == 3 and zone == "Z")


# Lambda's shape with one character replaced by anything: another script's digits, a sign, a space, a letter.
@MANY
@given(st.integers(0, 23), st.characters())
@example(0, "\u0662").via("Arabic-Indic digit, which the general parser reads as 2")
@example(21, "\uff10").via("a fullwidth zero in the millis")
@example(0, "+").via("int() would take a sign")
@example(2, "_").via("int() would take an underscore")
def test_one_character_changed_reads_as_before(position: int, replacement: str) -> None:
    text = lambda_time(2024, 5, 20, 16, 29, 45, 8)
    text = text[:position] + replacement + text[position + 1:]

    assert_as_before(text)


@MANY
@given(st.text(max_size=30))
def test_any_text_reads_as_before(text: str) -> None:
    assert_as_before(text)


def test_the_fast_path_remembers_seconds_without_mixing_them_up() -> None:
    """More distinct seconds than the cache holds, twice over: every one read again gives its own time."""
    texts = [lambda_time(2024, 5, 20, hour, minute, 30, 1) for hour in range(24) for minute in range(0, 60, 3)]
    first = [parse_time_unix_nano(text) for text in texts]

    assert [parse_time_unix_nano(text) for text in reversed(texts)] == first[::-1]
    assert first == [_parse_iso_8601(text) for text in texts]
