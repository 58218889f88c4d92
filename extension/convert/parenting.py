"""What the function sends to the receiver, joined to its invocation: its root spans re-parented onto the
invocation's SERVER span. Pure, stateful and bounded; it rewrites protobuf messages in place.

The function's SDK, with the X-Ray propagator, starts its root span in the trace of Lambda's X-Ray header (Root
is the trace id) under the header's Parent, the very span the invocation span hangs under. So a span whose
(trace id, parent span id) is an invocation's (trace id, X-Ray Parent) is a root span of the function in that
invocation, and its parent becomes the invocation span. A log record written while only that context was
current (no span of the function) carries the X-Ray Parent as its span id, and moves the same way.

The function's spans usually arrive before the invocation's platform.start (the Telemetry API buffers for
25 ms), so the invocation span's id is not known yet when they do. At INVOKE, `expect` marks the invocation's
key; what arrives for an expected key is remembered (while it waits in the buffer like anything else) and is
re-parented in place once platform.start told the ids (`started`). What arrives for a key no INVOKE has named
yet is kept too, a few hundred items at most: at a cold start the function's first export can be served before
the extension has read the INVOKE it belongs to (both waited in socket queues while it was importing). A key
that a later invocation reuses (a caller sending one Parent with several invocations) belongs to the latest one.
Invocations without an X-Ray header, or with Sampled=0, are left alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final, Literal

from google.protobuf.message import Message  # type: ignore[import-untyped]
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from extension.convert.builders import TraceIds
from extension.xray import parse_xray_header

# Keys of recent invocations (the span assembler remembers as many ids).
REMEMBERED_KEYS: Final = 256
# Items remembered while their invocation's platform.start has not come; beyond it they keep their parent.
MAX_WAITING: Final = 4096
# Items remembered while no INVOKE has named their key. Every child span of the function comes through here (its
# parent is one of the function's own spans, which no INVOKE names), so this is a short window, oldest out first.
MAX_UNCLAIMED: Final = 256

Key = tuple[int, int]
Field = Literal["parent_span_id", "span_id"]


class Parenting:
    """`expect` at INVOKE, `started` once platform.start was fed, `spans` and `log_records` as they arrive."""

    def __init__(self, *, max_keys: int = REMEMBERED_KEYS, max_waiting: int = MAX_WAITING,
                 max_unclaimed: int = MAX_UNCLAIMED) -> None:
        self._max_keys = max_keys
        self._max_waiting = max_waiting
        self._max_unclaimed = max_unclaimed
        self._keys: OrderedDict[Key, TraceIds | list[tuple[Message, Field]]] = OrderedDict()
        self._waiting = 0
        self._unclaimed: OrderedDict[Key, list[tuple[Message, Field]]] = OrderedDict()
        self._unclaimed_count = 0
        self.adopted = 0  # items re-parented since the start

    def expect(self, xray_header: str | None) -> None:
        """An invocation with this X-Ray header began: what arrives in its context waits for its ids."""
        context = parse_xray_header(xray_header) if xray_header else None
        if context is None or context.parent_span_id is None:
            return
        key = (context.trace_id, context.parent_span_id)
        self._forget(key)
        early = self._claim(key)
        if context.sampled is not False:
            early = early[:max(0, self._max_waiting - self._waiting)]
            self._waiting += len(early)
            self._remember(key, early)

    def started(self, ids: TraceIds | None) -> None:
        """The invocation span's ids (SpanAssembler.ids_of after its platform.start): re-parent what waited."""
        if ids is None or ids.remote_parent_id is None:
            return
        key = (ids.trace_id, ids.remote_parent_id)
        waiting = self._keys.get(key)
        self._forget(key)
        early = self._claim(key)  # platform.start may come before the INVOKE is read, at a cold start
        if not ids.sampled:
            return
        self._remember(key, ids)
        for message, field in [*(waiting if isinstance(waiting, list) else ()), *early]:
            self._adopt(message, field, ids)

    def spans(self, spans: Iterable[Span]) -> None:
        for span in spans:
            if span.parent_span_id:
                self._place(span, "parent_span_id", span.trace_id, span.parent_span_id)

    def log_records(self, records: Iterable[LogRecord]) -> None:
        for record in records:
            if record.span_id:
                self._place(record, "span_id", record.trace_id, record.span_id)

    def _place(self, message: Message, field: Field, trace_id: bytes, parent_id: bytes) -> None:
        if len(trace_id) != 16 or len(parent_id) != 8:
            return
        key = (int.from_bytes(trace_id, "big"), int.from_bytes(parent_id, "big"))
        found = self._keys.get(key)
        if isinstance(found, TraceIds):
            self._adopt(message, field, found)
        elif found is None:
            self._hold_unclaimed(key, message, field)
        elif self._waiting < self._max_waiting:
            found.append((message, field))
            self._waiting += 1

    def _adopt(self, message: Message, field: Field, ids: TraceIds) -> None:
        setattr(message, field, ids.span_id.to_bytes(8, "big"))
        self.adopted += 1

    def _remember(self, key: Key, value: TraceIds | list[tuple[Message, Field]]) -> None:
        self._keys[key] = value
        while len(self._keys) > self._max_keys:
            self._forget(next(iter(self._keys)))

    def _hold_unclaimed(self, key: Key, message: Message, field: Field) -> None:
        self._unclaimed.setdefault(key, []).append((message, field))
        self._unclaimed.move_to_end(key)
        self._unclaimed_count += 1
        while self._unclaimed_count > self._max_unclaimed:
            _, oldest = self._unclaimed.popitem(last=False)
            self._unclaimed_count -= len(oldest)

    def _claim(self, key: Key) -> list[tuple[Message, Field]]:
        """What arrived for `key` before it was named, taken out of the unclaimed window."""
        early = self._unclaimed.pop(key, [])
        self._unclaimed_count -= len(early)
        return early

    def _forget(self, key: Key) -> None:
        value = self._keys.pop(key, None)
        if isinstance(value, list):
            self._waiting -= len(value)
