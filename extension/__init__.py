"""OpenTelemetry extension for AWS Lambda: Telemetry API events to OTLP."""

__version__ = "0.1.0"
