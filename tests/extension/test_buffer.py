"""Buffer: bounded FIFO that drops the oldest and counts what it drops."""

from __future__ import annotations

import pytest

from extension.buffer import Buffer


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
