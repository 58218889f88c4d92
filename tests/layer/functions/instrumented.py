"""A function instrumented with its own OpenTelemetry SDK, configured by its environment alone (the exec wrapper
points it at the extension's receiver): per invocation a root span in the invocation's X-Ray context, a child
span and an OTLP log record, flushed before it returns, as instrumented Lambda functions do."""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import version
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

spans = TracerProvider()
spans.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(spans)
tracer = trace.get_tracer("instrumented")
records = LoggerProvider()
records.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
logger = logging.getLogger("instrumented")
logger.addHandler(LoggingHandler(logger_provider=records))
logger.setLevel(logging.INFO)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # With OTEL_PROPAGATORS=xray-lambda an empty carrier yields the invocation's X-Ray context (_X_AMZN_TRACE_ID).
    parent = propagate.extract({})
    with tracer.start_as_current_span("handler", context=parent) as root:
        root.set_attribute("app.request_id", context.aws_request_id)
        with tracer.start_as_current_span("work"):
            logger.info("working on %s", context.aws_request_id)
    spans.force_flush()
    records.force_flush()
    return {"opentelemetry": version("opentelemetry-sdk"), "endpoint": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "propagators": os.environ.get("OTEL_PROPAGATORS"),
            "layer_on_path": any("otel-extension" in entry for entry in sys.path)}
