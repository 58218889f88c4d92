"""A local AWS Lambda execution environment for running and testing external extensions.

It serves the Runtime, Extensions and Telemetry APIs on loopback, launches a layer's
extensions and a real `awslambdaric` runtime as Lambda does, freezes them between
invocations and enforces the shutdown deadline. Developer tooling: never shipped in the layer.
"""
