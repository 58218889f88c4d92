"""lambda_resource: semantic-convention attributes, the user's merged over ours, service.name last."""

from __future__ import annotations

from extension import __version__
from extension.convert.resource import lambda_resource, with_instance


def test_semantic_convention_attributes() -> None:
    resource = lambda_resource(
        service_name="my-fn",
        function_name="my-fn",
        function_version="$LATEST",
        region="eu-west-1",
        memory_mb=128,
    )

    assert dict(resource.attributes) == {
        "service.name": "my-fn",
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
        "cloud.region": "eu-west-1",
        "faas.name": "my-fn",
        "faas.version": "$LATEST",
        "faas.max_memory": 134_217_728,
        "telemetry.sdk.name": "lambda-otel-extension",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }


def test_unknown_values_are_left_out() -> None:
    resource = lambda_resource(service_name="svc")

    assert "faas.name" not in resource.attributes
    assert "faas.max_memory" not in resource.attributes
    assert "faas.instance" not in resource.attributes


def test_user_attributes_win_except_service_name() -> None:
    resource = lambda_resource(
        service_name="resolved-by-config",
        region="eu-west-1",
        extra={"cloud.region": "custom", "service.name": "from-attributes", "team": "core"},
    )

    assert resource.attributes["cloud.region"] == "custom"
    assert resource.attributes["team"] == "core"
    assert resource.attributes["service.name"] == "resolved-by-config"


def test_instance_is_added_later_unless_the_user_set_it() -> None:
    stream = "2025/01/07/my-fn[$LATEST]002cf7829acf404ea7f6995e1910b96b"

    added = with_instance(lambda_resource(service_name="svc", region="r"), stream)
    kept = with_instance(lambda_resource(service_name="svc", extra={"faas.instance": "mine"}), stream)

    assert added.attributes["faas.instance"] == stream
    assert added.attributes["cloud.region"] == "r"
    assert kept.attributes["faas.instance"] == "mine"
