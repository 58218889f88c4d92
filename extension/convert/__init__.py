"""Telemetry events to OpenTelemetry data: resource, spans; only convert._sdk builds SDK objects."""
