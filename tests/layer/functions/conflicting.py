"""A function that ships its own, much older protobuf beside its code, as many real functions do."""

from __future__ import annotations

from typing import Any

import google.protobuf
from google.protobuf import struct_pb2


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    message = struct_pb2.Struct()
    message.update({"request": context.aws_request_id})
    copy = struct_pb2.Struct.FromString(message.SerializeToString())
    try:
        import opentelemetry  # noqa: F401  the layer keeps its packages to itself
        layer_visible = True
    except ImportError:
        layer_visible = False
    return {"protobuf": google.protobuf.__version__, "roundtrip": copy["request"] == context.aws_request_id,
            "layer_visible": layer_visible}
