"""A bounded FIFO that drops its oldest items when full and counts what it dropped; stdlib only."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Buffer(Generic[T]):
    """FIFO of at most `max_items`; overflow drops the oldest, so fresh telemetry always fits.

    Dropping the oldest (not refusing the newest) keeps the listener from ever pushing back:
    under pressure we lose history, never the invocation that is running now.
    """

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self._items: deque[T] = deque(maxlen=max_items)
        self._dropped = 0

    @property
    def max_items(self) -> int:
        return self._items.maxlen or 0

    @property
    def dropped(self) -> int:
        """How many items were dropped since the buffer was made."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: T) -> None:
        if len(self._items) == self.max_items:
            self._dropped += 1
        self._items.append(item)  # deque(maxlen) pops the oldest itself

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def drain(self, max_items: int | None = None) -> list[T]:
        """Remove and return up to `max_items` of the oldest items (all of them by default)."""
        count = len(self._items) if max_items is None else min(max_items, len(self._items))
        return [self._items.popleft() for _ in range(max(count, 0))]

    def requeue_front(self, items: Iterable[T]) -> None:
        """Put items that failed to export back in front, keeping their order.

        They are older than anything queued since, so when space runs out they are the ones dropped.
        """
        returning = list(items)
        overflow = max(0, len(returning) + len(self._items) - self.max_items)
        self._dropped += overflow
        self._items.extendleft(reversed(returning[overflow:]))
