"""X-Ray trace headers to W3C ids, per the OTel Python propagator's rules."""

from __future__ import annotations

import pytest

from extension.xray import XRayContext, parse_xray_header


def test_root_parent_and_sampled_convert_to_w3c_ids() -> None:
    """The documented example: the epoch and random parts of Root joined make the trace id."""
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    assert parse_xray_header(header) == XRayContext(
        trace_id=0x5759E988BD862E3FE1BE46A994272793, parent_span_id=0x53995C3F42CD8AD8, sampled=True
    )


def test_sampled_zero_is_not_sampled() -> None:
    header = "Root=1-629d3097-1edcadf06b4c097a50faa7a1;Parent=2a68d66d2a726db8;Sampled=0"

    context = parse_xray_header(header)

    assert context is not None
    assert context.sampled is False


@pytest.mark.parametrize(
    "header",
    [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:fe460cdd:0",
        " Root = 1-5759e988-bd862e3fe1be46a994272793 ; Parent=53995c3f42cd8ad8 ;Sampled=1 ",
        "Sampled=1;Self=1-67891234-12456789abcdef012345678;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1;",
    ],
)
def test_unknown_keys_whitespace_order_case_and_trailing_separator_are_tolerated(header: str) -> None:
    assert parse_xray_header(header) == XRayContext(
        trace_id=0x5759E988BD862E3FE1BE46A994272793, parent_span_id=0x53995C3F42CD8AD8, sampled=True
    )


def test_parent_and_sampled_are_optional() -> None:
    assert parse_xray_header("Root=1-5759e988-bd862e3fe1be46a994272793") == XRayContext(
        trace_id=0x5759E988BD862E3FE1BE46A994272793
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Root=1_5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e988_bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3fe1be46a99427279",
        "Root=1-5759e988-bd862e3fe1be46a9942727930",
        "Root=1-5759e98g-bd862e3fe1be46a994272793",
        "Root=1-00000000-000000000000000000000000",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=+3995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=true",
        "Root=1-5759e988-bd862e3fe1be46a994272793;garbage",
    ],
)
def test_invalid_headers_give_none(header: str) -> None:
    """A bad Root, Parent or Sampled, or a part without '=', invalidates the whole header."""
    assert parse_xray_header(header) is None
