"""The Resource describing this function: semantic-convention cloud/faas attributes plus the user's."""

from __future__ import annotations

from collections.abc import Mapping

from extension.telemetry import SDK_ATTRIBUTES, Resource

_BYTES_PER_MB = 1024 * 1024


def lambda_resource(
    *,
    service_name: str,
    function_name: str | None = None,
    function_version: str | None = None,
    region: str | None = None,
    memory_mb: int | None = None,
    instance: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Resource:
    """Our attributes, then `extra` (OTEL_RESOURCE_ATTRIBUTES) over them, then `service_name` over all.

    `service_name` comes last because Config has already resolved it with the spec's precedence
    (OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then the function name).
    `instance` (faas.instance, the log stream name) is only known at platform.initStart: see with_instance.
    """
    ours: dict[str, str | int] = {
        **SDK_ATTRIBUTES,
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
    }
    optional: dict[str, str | int | None] = {
        "cloud.region": region,
        "faas.name": function_name,
        "faas.version": function_version,
        "faas.max_memory": None if memory_mb is None else memory_mb * _BYTES_PER_MB,
        "faas.instance": instance,
    }
    ours.update({key: value for key, value in optional.items() if value is not None})
    return Resource({**ours, **(extra or {}), "service.name": service_name})


def with_instance(resource: Resource, instance: str) -> Resource:
    """`resource` with faas.instance set, unless the user already set it."""
    if "faas.instance" in resource.attributes:
        return resource
    return Resource({**resource.attributes, "faas.instance": instance})
