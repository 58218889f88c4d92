"""OTLP export: the HTTP transport seam and the OTLP/HTTP span exporter built on it."""
