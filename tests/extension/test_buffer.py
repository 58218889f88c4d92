"""Buffer: bounded FIFO that drops the oldest and counts what it drops."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extension.buffer import Buffer
from extension.export import protobuf
from extension.export.size import estimate_span_bytes
from extension.telemetry import Resource, SpanData


def test_fifo_order_and_drain_all() -> None:
    buffer: Buffer[int] = Buffer(5)
    buffer.extend([1, 2, 3])

    assert len(buffer) == 3
    assert buffer.drain() == [1, 2, 3]
    assert len(buffer) == 0
    assert buffer.dropped == 0


def test_when_full_the_oldest_are_dropped_and_counted() -> None:
    buffer: Buffer[int] = Buffer(3)
    buffer.extend(range(5))
    buffer.append(5)

    assert buffer.drain() == [3, 4, 5]
    assert buffer.dropped == 3


def test_drain_takes_at_most_max_items_from_the_front() -> None:
    buffer: Buffer[str] = Buffer(10)
    buffer.extend("abcde")

    assert buffer.drain(2) == ["a", "b"]
    assert buffer.drain(0) == []
    assert buffer.drain(10) == ["c", "d", "e"]


def test_requeued_items_go_back_in_front_in_order() -> None:
    """A failed export's items are retried before anything that arrived meanwhile."""
    buffer: Buffer[int] = Buffer(10)
    buffer.extend([1, 2, 3])
    failed = buffer.drain()
    buffer.extend([4, 5])

    buffer.requeue_front(failed)

    assert buffer.drain() == [1, 2, 3, 4, 5]
    assert buffer.dropped == 0


def test_requeue_stays_bounded_dropping_the_oldest_requeued() -> None:
    buffer: Buffer[int] = Buffer(4)
    buffer.extend([5, 6])

    buffer.requeue_front([1, 2, 3, 4])

    assert buffer.drain() == [3, 4, 5, 6]
    assert buffer.dropped == 2


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Buffer[int](0)


def test_a_byte_bound_drops_the_oldest_until_it_holds() -> None:
    buffer: Buffer[str] = Buffer(100, max_bytes=10, size_of=len)
    buffer.extend(["aaaa", "bbbb", "cc"])
    buffer.append("dddd")

    assert buffer.size_bytes == 10 and buffer.dropped == 1
    assert buffer.drain() == ["bbbb", "cc", "dddd"] and buffer.size_bytes == 0


def test_the_newest_item_is_kept_even_when_it_alone_is_too_large() -> None:
    buffer: Buffer[str] = Buffer(100, max_bytes=10, size_of=len)
    buffer.extend(["aa", "x" * 50])

    assert buffer.drain() == ["x" * 50] and buffer.dropped == 1


def test_requeue_under_a_byte_bound_drops_the_oldest_requeued() -> None:
    buffer: Buffer[str] = Buffer(100, max_bytes=12, size_of=len)
    buffer.extend(["new1", "new2"])

    buffer.requeue_front(["old1", "old2", "old3"])

    assert buffer.drain() == ["old3", "new1", "new2"] and buffer.dropped == 2


def test_half_full_is_half_of_either_bound() -> None:
    by_count = Buffer[int](4)
    by_count.extend([1])
    assert not by_count.half_full
    by_count.extend([2])
    assert by_count.half_full
    by_bytes = Buffer[int](100, max_bytes=10, size_of=lambda item: item)
    by_bytes.extend([4])
    assert not by_bytes.half_full
    by_bytes.extend([1])
    assert by_bytes.half_full


def test_a_byte_bound_needs_a_size() -> None:
    with pytest.raises(ValueError, match="size_of"):
        Buffer[str](10, max_bytes=100)


def test_the_span_size_estimate_is_close_to_the_encoded_size() -> None:
    resource = Resource({"service.name": "my-fn"})
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({}, None),
        ({"faas.invocation_id": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa", "faas.coldstart": True,
          "aws.lambda.invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:my-fn"}, "Runtime.ExitError"),
        ({"big": "x" * 10_000, "n": 128, "f": 0.5}, None),
    ]
    for attributes, error in cases:
        span = SpanData(name="my-fn", kind="server", trace_id=1 << 100, span_id=1 << 60, parent_span_id=1 << 61,
                         parent_is_remote=True, start_unix_nano=1_736_208_000_000_000_000,
                         end_unix_nano=1_736_208_000_100_000_000, attributes=attributes, error=error,
                         resource=resource)
        encoded = len(protobuf.span_bytes(span))
        assert 0.5 * encoded <= estimate_span_bytes(span) <= 2 * encoded, (attributes, encoded)


@given(sizes=st.lists(st.integers(min_value=1, max_value=50), max_size=60),
       max_items=st.integers(min_value=1, max_value=20), max_bytes=st.integers(min_value=1, max_value=200),
       split=st.integers(min_value=0, max_value=60))
def test_extend_keeps_what_appending_one_by_one_keeps(sizes: list[int], max_items: int, max_bytes: int,
                                                     split: int) -> None:
    items = list(enumerate(sizes))
    one_by_one = Buffer[tuple[int, int]](max_items, max_bytes=max_bytes, size_of=lambda item: item[1])
    at_once = Buffer[tuple[int, int]](max_items, max_bytes=max_bytes, size_of=lambda item: item[1])
    for item in items:
        one_by_one.append(item)
    at_once.extend(items[:split])
    at_once.extend(items[split:])

    assert (at_once.dropped, at_once.size_bytes) == (one_by_one.dropped, one_by_one.size_bytes)
    assert at_once.drain() == one_by_one.drain()
