"""Config.from_env: defaults, precedence, endpoint resolution, every problem at once, secrets kept out."""

from __future__ import annotations

import pytest

from extension.config import Config, SignalExport
from extension.errors import ConfigError

LAMBDA = {
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
    "AWS_LAMBDA_FUNCTION_NAME": "my-fn",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_REGION": "eu-west-1",
}
COLLECTOR = "https://collector.example.com"


def from_env(**overrides: str) -> Config:
    """With a collector set: left unset, the endpoint would be the extension's own receiver."""
    return Config.from_env({**LAMBDA, "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR, **overrides})


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR, **env})
    return caught.value.problems


def test_defaults_with_only_what_lambda_provides() -> None:
    # Without the receiver: with it, the default endpoint is refused (see the receiver's tests below).
    config = Config.from_env({**LAMBDA, "OTEL_LAMBDA_RECEIVER_PORT": "off"})

    assert config == Config(
        runtime_api="127.0.0.1:9001",
        function_name="my-fn",
        function_version="$LATEST",
        function_memory_mb=128,
        region="eu-west-1",
        service_name="my-fn",
        receiver_port=None,
    )
    assert config.traces == SignalExport(endpoint="http://localhost:4318/v1/traces")
    assert (config.traces.protocol, config.traces.compression, config.traces.timeout_s) == (
        "http/protobuf",
        "gzip",
        10.0,
    )
    assert config.traces.enabled and config.logs.enabled and config.metrics.enabled
    assert (config.log_level, config.buffer_max_spans, config.shutdown_margin_ms) == ("info", 2048, 200)
    assert (config.runtime_done_timeout_ms, config.listener_port, config.sam_local) == (None, 0, False)


def test_the_constructor_defaults_match_the_parsed_defaults() -> None:
    """So the shell's tests can build a Config directly."""
    assert Config.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR}) == (
        Config(runtime_api="127.0.0.1:9001", traces=SignalExport(endpoint=f"{COLLECTOR}/v1/traces"),
               logs=SignalExport(endpoint=f"{COLLECTOR}/v1/logs"),
               metrics=SignalExport(endpoint=f"{COLLECTOR}/v1/metrics")))


def test_every_problem_is_reported_at_once_naming_the_variable_and_accepted_values() -> None:
    found = problems(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "10s",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_LOG_LEVEL": "loud",
            "OTEL_LAMBDA_BUFFER_MAX_SPANS": "0",
            "OTEL_LAMBDA_LISTENER_PORT": "70000",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots",
            "AWS_SAM_LOCAL": "yes",
        }
    )

    assert found == [
        "AWS_LAMBDA_RUNTIME_API: required, as host:port (Lambda sets it)",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE: 'lots' is not accepted; use an integer >= 1",
        "AWS_SAM_LOCAL: 'yes' is not accepted; use one of: true, 1, false, 0",
        "OTEL_EXPORTER_OTLP_ENDPOINT: is not accepted; use an http:// or https:// URL with a host",
        "OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' is not supported; use one of: http/protobuf, http/json",
        "OTEL_TRACES_EXPORTER: 'console' is not accepted; use one of: otlp, none",
        "OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' is not accepted; use one of: gzip, none",
        "OTEL_EXPORTER_OTLP_TIMEOUT: '10s' is not accepted; use an integer >= 1",
        "OTEL_LOG_LEVEL: 'loud' is not accepted; use one of: debug, info, warn, warning, error",
        "OTEL_LAMBDA_BUFFER_MAX_SPANS: '0' is not accepted; use an integer >= 1",
        "OTEL_LAMBDA_LISTENER_PORT: '70000' is not accepted; use an integer 0-65535",
    ]


def test_a_malformed_runtime_api_is_a_problem() -> None:
    assert problems({"AWS_LAMBDA_RUNTIME_API": "http://127.0.0.1:9001"}) == [
        "AWS_LAMBDA_RUNTIME_API: 'http://127.0.0.1:9001' is not accepted; use host:port"
    ]


def test_the_error_message_lists_all_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"OTEL_LOG_LEVEL": "loud", "OTEL_LAMBDA_RECEIVER_PORT": "off"})

    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "AWS_LAMBDA_RUNTIME_API" in message
    assert "OTEL_LOG_LEVEL" in message


def test_signal_endpoints_append_the_path_to_the_base_and_use_specific_ones_as_is() -> None:
    config = from_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="https://collector.example.com:4318/otlp/",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="https://logs.example.com/custom/path",
    )

    assert config.traces.endpoint == "https://collector.example.com:4318/otlp/v1/traces"
    assert config.metrics.endpoint == "https://collector.example.com:4318/otlp/v1/metrics"
    assert config.logs.endpoint == "https://logs.example.com/custom/path"


def test_signal_settings_win_over_general_ones() -> None:
    config = from_env(
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_COMPRESSION="none",
        OTEL_EXPORTER_OTLP_METRICS_COMPRESSION="gzip",
        OTEL_EXPORTER_OTLP_TIMEOUT="2500",
        OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="500",
        OTEL_METRICS_EXPORTER="none",
    )

    assert (config.traces.protocol, config.logs.protocol, config.metrics.protocol) == (
        "http/protobuf",
        "http/json",
        "http/json",
    )
    assert (config.traces.compression, config.metrics.compression) == ("none", "gzip")
    assert (config.traces.timeout_s, config.logs.timeout_s) == (2.5, 0.5)
    assert (config.traces.enabled, config.metrics.enabled) == (True, False)


def test_a_specific_grpc_protocol_names_the_specific_variable() -> None:
    found = problems({**LAMBDA, "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "GRPC"})

    assert found == ["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'grpc' is not supported; use one of: http/protobuf, http/json"]


def test_headers_are_percent_decoded_lowercased_and_merged_per_signal() -> None:
    config = from_env(
        OTEL_EXPORTER_OTLP_HEADERS="X-Api-Key=s%3Dcr%2Cet, team=core,",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-api-key=traces-key",
    )

    assert dict(config.traces.headers) == {"x-api-key": "traces-key", "team": "core"}
    assert dict(config.logs.headers) == {"x-api-key": "s=cr,et", "team": "core"}


def test_header_values_never_appear_in_reprs_or_errors() -> None:
    config = from_env(OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20hunter2")
    found = problems({**LAMBDA, "OTEL_EXPORTER_OTLP_HEADERS": "authorization=hunter2%0D%0Ainjected,bad name=hunter2"})

    assert "hunter2" not in repr(config)
    assert "authorization" in repr(config.traces)
    assert "<redacted>" in repr(config.traces)
    assert found[:2] == [
        "OTEL_EXPORTER_OTLP_HEADERS: entry 1 (authorization) has a value with control characters",
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 does not have a valid header name",
    ]
    assert not any("hunter2" in line for line in found)


def test_service_name_precedence() -> None:
    """OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then the function name."""
    attributes = "service.name=from-attributes"

    assert from_env(OTEL_SERVICE_NAME="svc", OTEL_RESOURCE_ATTRIBUTES=attributes).service_name == "svc"
    assert from_env(OTEL_RESOURCE_ATTRIBUTES=attributes).service_name == "from-attributes"
    assert from_env().service_name == "my-fn"
    assert Config.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "OTEL_LAMBDA_RECEIVER_PORT": "0"}
                           ).service_name == "unknown_service"


def test_resource_attributes_are_percent_decoded() -> None:
    config = from_env(OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod, team=a%2Cb%20c ,note=caf%C3%A9")

    assert dict(config.resource_attributes) == {"deployment.environment": "prod", "team": "a,b c", "note": "café"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("novalue", "OTEL_RESOURCE_ATTRIBUTES: entry 1 is not key=value"),
        ("=x", "OTEL_RESOURCE_ATTRIBUTES: entry 1 is not key=value"),
        ("a=1,b=%FF", "OTEL_RESOURCE_ATTRIBUTES: entry 2 is not valid percent-encoded UTF-8"),
    ],
)
def test_bad_resource_attributes_are_problems(value: str, problem: str) -> None:
    assert problems({**LAMBDA, "OTEL_RESOURCE_ATTRIBUTES": value}) == [problem]


def test_own_settings_and_lambda_inputs() -> None:
    config = from_env(
        OTEL_LOG_LEVEL="WARN",
        OTEL_LAMBDA_BUFFER_MAX_SPANS="512",
        OTEL_LAMBDA_SHUTDOWN_MARGIN_MS="0",
        OTEL_LAMBDA_RUNTIME_DONE_TIMEOUT_MS="1500",
        OTEL_LAMBDA_LISTENER_PORT="4243",
        AWS_SAM_LOCAL="true",
    )

    assert config.log_level == "warning"
    assert (config.buffer_max_spans, config.shutdown_margin_ms, config.runtime_done_timeout_ms) == (512, 0, 1500)
    assert (config.listener_port, config.sam_local) == (4243, True)


def test_empty_values_count_as_unset() -> None:
    config = from_env(OTEL_EXPORTER_OTLP_ENDPOINT="", OTEL_LOG_LEVEL="  ", OTEL_SERVICE_NAME="",
                      OTEL_LAMBDA_RECEIVER_PORT="off")

    assert (config.traces.endpoint, config.log_level, config.service_name) == (
        "http://localhost:4318/v1/traces",
        "info",
        "my-fn",
    )


def test_the_receiver_listens_on_4318_unless_moved_or_turned_off() -> None:
    assert from_env().receiver_port == 4318
    assert from_env(OTEL_LAMBDA_RECEIVER_PORT="4320").receiver_port == 4320
    assert from_env(OTEL_LAMBDA_RECEIVER_PORT="OFF").receiver_port is None
    assert from_env(OTEL_LAMBDA_RECEIVER_PORT="0").receiver_port is None
    assert problems({**LAMBDA, "OTEL_LAMBDA_RECEIVER_PORT": "yes"}) == [
        "OTEL_LAMBDA_RECEIVER_PORT: 'yes' is not accepted; use an integer 0-65535"]
    assert problems({**LAMBDA, "OTEL_LAMBDA_RECEIVER_PORT": "9000", "OTEL_LAMBDA_LISTENER_PORT": "9000"}) == [
        "OTEL_LAMBDA_RECEIVER_PORT: 9000 is also OTEL_LAMBDA_LISTENER_PORT; give them two ports"]


def test_the_extension_never_exports_to_its_own_receiver() -> None:
    # The defaults alone: http://localhost:4318 is where the receiver listens.
    [default] = problems({**LAMBDA, "OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    assert default.startswith("OTEL_EXPORTER_OTLP_ENDPOINT: unset, i.e. http://localhost:4318 is this extension's "
                              "own receiver (OTEL_LAMBDA_RECEIVER_PORT=4318)")
    assert "OTEL_LAMBDA_RECEIVER_PORT=off" in default
    for endpoint in ("http://127.0.0.1:4318", "http://[::1]:4318/", "http://LOCALHOST:4318", "http://127.0.0.2:4318",
                     "http://0.0.0.0:4318", "http://sandbox.localdomain:4318"):
        [found] = problems({**LAMBDA, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        assert found.startswith(f"OTEL_EXPORTER_OTLP_ENDPOINT: {endpoint}") and "own receiver" in found
    # One signal's endpoint is enough, and is the one named; a signal that is not exported does not count.
    [logs] = problems({**LAMBDA, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://localhost:9999/v1/logs",
                       "OTEL_LAMBDA_RECEIVER_PORT": "9999"})
    assert logs.startswith("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: http://localhost:9999/v1/logs is this extension's")
    assert from_env(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://localhost:9999/v1/logs", OTEL_LOGS_EXPORTER="none",
                    OTEL_LAMBDA_RECEIVER_PORT="9999").receiver_port == 9999
    # Another port, another host, or no receiver: fine.
    assert from_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://localhost:4317").receiver_port == 4318
    assert from_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.internal:4318").receiver_port == 4318
    assert from_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:80", OTEL_LAMBDA_RECEIVER_PORT="81").traces.enabled
    assert from_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://localhost:4318",
                    OTEL_LAMBDA_RECEIVER_PORT="off").receiver_port is None
