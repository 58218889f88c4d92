"""SecretSettings.from_env: which store and resource, its region and endpoint, and every problem reported at once."""

from __future__ import annotations

import pytest

from extension.errors import ConfigError
from extension.secrets.settings import SecretSettings

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:otel/api-key-AbCdEf"
PARAMETER_ARN = "arn:aws:ssm:ap-southeast-2:123456789012:parameter/otel/api-key"


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        SecretSettings.from_env(env)
    return raised.value.problems


def test_nothing_configured_means_no_secret() -> None:
    assert SecretSettings.from_env({"AWS_REGION": "us-east-1", "OTEL_LAMBDA_HEADERS_PARAMETER": "  "}) is None


def test_a_secret_arn_names_its_own_region_and_endpoint() -> None:
    settings = SecretSettings.from_env({"OTEL_LAMBDA_HEADERS_SECRET_ARN": SECRET_ARN, "AWS_REGION": "us-east-1"})

    assert settings == SecretSettings(service="secretsmanager", resource=SECRET_ARN, region="eu-west-1",
                                      endpoint="https://secretsmanager.eu-west-1.amazonaws.com")


def test_a_partial_secret_arn_and_the_other_options() -> None:
    settings = SecretSettings.from_env({
        "OTEL_LAMBDA_HEADERS_SECRET_ARN": "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:otel",
        "OTEL_LAMBDA_HEADERS_JSON_KEY": "apiKey",
        "OTEL_LAMBDA_HEADERS_HEADER_NAME": "X-API-Key",
        "OTEL_LAMBDA_HEADERS_REFRESH_S": "300",
    })

    assert settings is not None
    assert (settings.region, settings.endpoint) == ("cn-north-1", "https://secretsmanager.cn-north-1.amazonaws.com.cn")
    assert (settings.json_key, settings.header_name, settings.refresh_s) == ("apiKey", "x-api-key", 300)


def test_a_parameter_by_name_is_in_the_functions_region() -> None:
    settings = SecretSettings.from_env({"OTEL_LAMBDA_HEADERS_PARAMETER": "/otel/api-key",
                                        "AWS_REGION": "us-gov-west-1"})

    assert settings == SecretSettings(service="ssm", resource="/otel/api-key", region="us-gov-west-1",
                                      endpoint="https://ssm.us-gov-west-1.amazonaws.com")


def test_a_parameter_by_arn_is_in_the_arns_region() -> None:
    settings = SecretSettings.from_env({"OTEL_LAMBDA_HEADERS_PARAMETER": PARAMETER_ARN})

    assert settings is not None and settings.region == "ap-southeast-2"


def test_the_service_endpoint_variable_wins_over_the_general_one() -> None:
    env = {"OTEL_LAMBDA_HEADERS_PARAMETER": PARAMETER_ARN, "AWS_ENDPOINT_URL": "http://127.0.0.1:1/",
           "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:2/", "AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:3"}
    settings = SecretSettings.from_env(env)
    assert settings is not None and settings.endpoint == "http://127.0.0.1:2"

    del env["AWS_ENDPOINT_URL_SSM"]
    settings = SecretSettings.from_env(env)
    assert settings is not None and settings.endpoint == "http://127.0.0.1:1"


def test_every_problem_is_reported_together() -> None:
    found = problems({
        "OTEL_LAMBDA_HEADERS_SECRET_ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/x",
        "OTEL_LAMBDA_HEADERS_PARAMETER": "/otel/key",
        "OTEL_LAMBDA_HEADERS_HEADER_NAME": "x api key",
        "OTEL_LAMBDA_HEADERS_REFRESH_S": "10",
        "AWS_ENDPOINT_URL": "ftp://example.com",
    })

    assert [line.split(":")[0] for line in found] == [
        "OTEL_LAMBDA_HEADERS_SECRET_ARN, OTEL_LAMBDA_HEADERS_PARAMETER",
        "OTEL_LAMBDA_HEADERS_SECRET_ARN",
        "OTEL_LAMBDA_HEADERS_HEADER_NAME",
        "AWS_ENDPOINT_URL",
        "OTEL_LAMBDA_HEADERS_REFRESH_S",
    ]
    assert "'arn:aws:ssm:us-east-1:123456789012:parameter/x' is not a Secrets Manager secret ARN" in found[1]


@pytest.mark.parametrize("arn", [
    "arn:aws:secretsmanager:us-east-1:12345:secret:x",  # short account
    "arn:aws:secretsmanager:useast1:123456789012:secret:x",  # no region
    "arn:aws:secretsmanager:us-east-1:123456789012:key:x",  # not a secret
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:a b",  # a space in the name
])
def test_malformed_secret_arns_are_refused(arn: str) -> None:
    assert problems({"OTEL_LAMBDA_HEADERS_SECRET_ARN": arn})[0].startswith("OTEL_LAMBDA_HEADERS_SECRET_ARN: ")


def test_a_parameter_name_needs_a_valid_region() -> None:
    assert problems({"OTEL_LAMBDA_HEADERS_PARAMETER": "/otel/key"}) == [
        "AWS_REGION: required to read OTEL_LAMBDA_HEADERS_PARAMETER by name; or give the parameter's ARN"]
    assert problems({"OTEL_LAMBDA_HEADERS_PARAMETER": "/otel/key", "AWS_REGION": "moon"}) == [
        "AWS_REGION: 'moon' is not a region (like us-east-1)"]


def test_options_without_a_secret_are_a_mistake() -> None:
    found = problems({"OTEL_LAMBDA_HEADERS_JSON_KEY": "k", "OTEL_LAMBDA_HEADERS_REFRESH_S": "60"})

    assert found == [
        "OTEL_LAMBDA_HEADERS_JSON_KEY: has no effect without OTEL_LAMBDA_HEADERS_SECRET_ARN or "
        "OTEL_LAMBDA_HEADERS_PARAMETER",
        "OTEL_LAMBDA_HEADERS_REFRESH_S: has no effect without OTEL_LAMBDA_HEADERS_SECRET_ARN or "
        "OTEL_LAMBDA_HEADERS_PARAMETER",
    ]


def test_a_key_pasted_where_a_name_belongs_is_never_quoted() -> None:
    key = "sk_live_0123456789abcdef"
    message = str(ConfigError(
        problems({"OTEL_LAMBDA_HEADERS_SECRET_ARN": key})
        + problems({"OTEL_LAMBDA_HEADERS_PARAMETER": f"api key {key}", "AWS_REGION": "us-east-1"})
        + problems({"OTEL_LAMBDA_HEADERS_PARAMETER": "/p", "AWS_REGION": "us-east-1",
                    "OTEL_LAMBDA_HEADERS_HEADER_NAME": f"x-api-key: {key}"})
    ))

    assert key not in message


def test_the_secret_goes_over_the_general_headers_and_under_a_signals_own() -> None:
    from extension.app import _SignalHeaders
    from extension.config import Config

    config = Config.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
                              "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com",
                              "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=from-env,x-team=core",
                              "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-api-key=other-vendor"})
    headers = _SignalHeaders(config)

    headers.apply({"x-api-key": "from-secret", "x-extra": "1"})
    assert headers.signals["traces"].headers == {"x-api-key": "from-secret", "x-team": "core", "x-extra": "1"}
    assert headers.signals["logs"].headers == {"x-api-key": "other-vendor", "x-team": "core", "x-extra": "1"}
    headers.apply({"x-api-key": "rotated"})  # a header the rotated secret dropped is no longer sent
    assert headers.signals["traces"].headers == {"x-api-key": "rotated", "x-team": "core"}
