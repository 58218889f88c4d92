"""A bounded FIFO that drops its oldest items when full and counts what it dropped; stdlib only."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def _no_size(item: object) -> int:
    return 0


class Buffer(Generic[T]):
    """FIFO of at most `max_items` and, with `max_bytes`, at most that many bytes as `size_of` estimates
    them; overflow drops the oldest, so fresh telemetry always fits.

    Dropping the oldest (not refusing the newest) keeps the listener from ever pushing back:
    under pressure we lose history, never the invocation that is running now. The newest item is kept
    even when it alone is larger than `max_bytes`.
    """

    def __init__(
        self, max_items: int, *, max_bytes: int | None = None, size_of: Callable[[T], int] | None = None
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_bytes is not None and (max_bytes < 1 or size_of is None):
            raise ValueError("max_bytes must be at least 1 and comes with size_of")
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._size_of: Callable[[T], int] = size_of if size_of is not None and max_bytes is not None else _no_size
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._dropped = 0

    @property
    def max_items(self) -> int:
        return self._max_items

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def dropped(self) -> int:
        """How many items were dropped since the buffer was made."""
        return self._dropped

    @property
    def size_bytes(self) -> int:
        """The estimated size of what the buffer holds (0 without a byte bound)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    @property
    def half_full(self) -> bool:
        """Half of either bound is taken: time to send, before the bound starts dropping."""
        return 2 * len(self._items) >= self._max_items or (
            self._max_bytes is not None and 2 * self._bytes >= self._max_bytes)

    def append(self, item: T) -> None:
        size = self._size_of(item)
        self._items.append((item, size))
        self._bytes += size
        self._shed()

    def extend(self, items: Iterable[T]) -> None:
        """append() each item; the bounds hold afterwards as they would after each (the newest items stay)."""
        sized = [(item, self._size_of(item)) for item in items]
        self._items.extend(sized)
        self._bytes += sum(size for _, size in sized)
        self._shed()

    def drain(self, max_items: int | None = None) -> list[T]:
        """Remove and return up to `max_items` of the oldest items (all of them by default)."""
        count = len(self._items) if max_items is None else min(max_items, len(self._items))
        drained: list[T] = []
        for _ in range(max(count, 0)):
            item, size = self._items.popleft()
            self._bytes -= size
            drained.append(item)
        return drained

    def requeue_front(self, items: Iterable[T]) -> None:
        """Put items that failed to export back in front, keeping their order.

        They are older than anything queued since, so when space runs out they are the ones dropped.
        """
        returning = [(item, self._size_of(item)) for item in items]
        self._items.extendleft(reversed(returning))
        self._bytes += sum(size for _, size in returning)
        self._shed()

    def _shed(self) -> None:
        """Drop from the old end until both bounds hold (keeping at least the newest item)."""
        while len(self._items) > self._max_items or (
            self._max_bytes is not None and self._bytes > self._max_bytes and len(self._items) > 1
        ):
            _, size = self._items.popleft()
            self._bytes -= size
            self._dropped += 1
