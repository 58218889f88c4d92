"""The benchmark's function: its own OpenTelemetry SDK, configured by its environment; each invocation makes
`spans` spans in the invocation's X-Ray context and times the export (force_flush), the cost the function pays."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("bench")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with tracer.start_as_current_span("handler", context=propagate.extract({})):
        for _ in range(int(event.get("spans", 1)) - 1):
            with tracer.start_as_current_span("work"):
                pass
    started = time.perf_counter()
    provider.force_flush()
    return {"export_ms": (time.perf_counter() - started) * 1000}
