"""The function's root spans move under their invocation's span, whether they arrive before or after its
platform.start; everything else keeps its parent; the state stays bounded."""

from __future__ import annotations

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from extension.convert.builders import TraceIds
from extension.convert.parenting import Parenting

ROOT = 0x5759E988BD862E3FE1BE46A994272793
PARENT = 0x53995C3F42CD8AD8
HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
INVOCATION = TraceIds(trace_id=ROOT, span_id=0x1111, remote_parent_id=PARENT)


def span(parent: int, trace_id: int = ROOT, span_id: int = 0xAAAA) -> Span:
    return Span(name="handler", trace_id=trace_id.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"),
                parent_span_id=parent.to_bytes(8, "big") if parent else b"")


def parent_of(message: Span) -> int:
    return int.from_bytes(message.parent_span_id, "big")


def test_a_root_span_that_arrives_before_platform_start_moves_once_it_comes() -> None:
    parenting = Parenting()
    parenting.expect(HEADER)  # INVOKE
    root, child = span(PARENT), span(0xAAAA, span_id=0xBBBB)

    parenting.spans([root, child])
    assert parent_of(root) == PARENT  # the invocation span's id is not known yet
    parenting.started(INVOCATION)

    assert parent_of(root) == 0x1111 and parent_of(child) == 0xAAAA
    assert parenting.adopted == 1


def test_a_root_span_that_arrives_after_platform_start_moves_at_once() -> None:
    parenting = Parenting()
    parenting.expect(HEADER)
    parenting.started(INVOCATION)
    late = span(PARENT)

    parenting.spans([late])

    assert parent_of(late) == 0x1111


def test_a_log_record_written_in_the_invocations_context_moves_too() -> None:
    parenting = Parenting()
    parenting.expect(HEADER)
    parenting.started(INVOCATION)
    loose = LogRecord(trace_id=ROOT.to_bytes(16, "big"), span_id=PARENT.to_bytes(8, "big"))
    inside = LogRecord(trace_id=ROOT.to_bytes(16, "big"), span_id=(0xAAAA).to_bytes(8, "big"))

    parenting.log_records([loose, inside, LogRecord()])

    assert int.from_bytes(loose.span_id, "big") == 0x1111 and int.from_bytes(inside.span_id, "big") == 0xAAAA


def test_what_arrives_before_its_invoke_is_read_still_moves() -> None:
    """At a cold start the receiver may serve the function's first export before the INVOKE is read, and
    platform.start may come before it too."""
    for order in (["expect", "started"], ["started", "expect"]):
        parenting = Parenting()
        root, log = span(PARENT), LogRecord(trace_id=ROOT.to_bytes(16, "big"), span_id=PARENT.to_bytes(8, "big"))
        parenting.spans([root])
        parenting.log_records([log])
        for step in order:
            parenting.expect(HEADER) if step == "expect" else parenting.started(INVOCATION)

        assert parent_of(root) == 0x1111 and int.from_bytes(log.span_id, "big") == 0x1111, order
        assert parenting.adopted == 2


def test_what_arrives_for_a_key_no_invoke_names_is_kept_for_a_while_only() -> None:
    parenting = Parenting(max_unclaimed=3)
    early = [span(PARENT) for _ in range(2)]
    parenting.spans(early)
    parenting.spans([span(0xAAAA, span_id=0xBBBB) for _ in range(2)])  # the function's child spans: never named

    parenting.expect(HEADER)
    parenting.started(INVOCATION)

    assert [parent_of(s) for s in early] == [PARENT, PARENT]  # pushed out of the window before their INVOKE
    assert parenting._unclaimed_count == 2 <= 3 and parenting.adopted == 0


def test_unclaimed_items_of_an_unsampled_invocation_are_left_alone() -> None:
    parenting = Parenting()
    unsampled = span(PARENT)
    parenting.spans([unsampled])
    parenting.expect(HEADER.replace("Sampled=1", "Sampled=0"))
    parenting.started(TraceIds(trace_id=ROOT, span_id=0x1111, remote_parent_id=PARENT, sampled=False))

    assert parent_of(unsampled) == PARENT and parenting._unclaimed_count == 0


def test_a_reused_header_belongs_to_the_latest_invocation() -> None:
    parenting = Parenting()
    parenting.expect(HEADER)
    parenting.started(INVOCATION)
    parenting.expect(HEADER)  # the next invocation, same caller, same Parent
    early = span(PARENT)

    parenting.spans([early])
    assert parent_of(early) == PARENT  # not the previous invocation's span
    parenting.started(TraceIds(trace_id=ROOT, span_id=0x2222, remote_parent_id=PARENT))

    assert parent_of(early) == 0x2222


def test_other_traces_unsampled_invocations_and_no_header_are_left_alone() -> None:
    parenting = Parenting()
    parenting.expect(HEADER)
    parenting.started(INVOCATION)
    foreign, rootless = span(PARENT, trace_id=ROOT + 1), span(0)
    parenting.expect("Root=1-5759e988-bd862e3fe1be46a994270000;Parent=53995c3f42cd8ad8;Sampled=0")
    parenting.started(TraceIds(trace_id=0x5759E988BD862E3FE1BE46A994270000, span_id=0x3333,
                               remote_parent_id=PARENT, sampled=False))
    unsampled = span(PARENT, trace_id=0x5759E988BD862E3FE1BE46A994270000)
    parenting.expect(None)
    parenting.expect("not a header")
    parenting.started(None)
    parenting.started(TraceIds(trace_id=1, span_id=2))

    parenting.spans([foreign, rootless, unsampled, Span()])

    assert (parent_of(foreign), rootless.parent_span_id, parent_of(unsampled)) == (PARENT, b"", PARENT)
    assert parenting.adopted == 0


def test_the_state_is_bounded() -> None:
    parenting = Parenting(max_keys=4, max_waiting=3)
    for parent in range(1, 11):
        parenting.expect(f"Root=1-5759e988-bd862e3fe1be46a994272793;Parent={parent:016x}")
    waiting = [span(10) for _ in range(5)]
    parenting.spans(waiting)
    parenting.spans([span(1)])  # forgotten: only the 4 latest keys are kept

    parenting.started(TraceIds(trace_id=ROOT, span_id=0x4444, remote_parent_id=10))

    assert [parent_of(s) for s in waiting] == [0x4444] * 3 + [10] * 2
    assert len(parenting._keys) <= 4 and parenting._waiting == 0
