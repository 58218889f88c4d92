"""The pure parts of fetching the headers secret: values to headers, AWS answers, retries, credentials, the cache."""

from __future__ import annotations

import orjson
import pytest

from extension.secrets.cache import HeaderCache, SecretResult
from extension.secrets.credentials import ContainerEndpoint, credential_source, read_container_answer
from extension.secrets.protocol import Failure, RetryPolicy, read_answer, read_error, request_for
from extension.secrets.settings import SecretSettings
from extension.secrets.sigv4 import Credentials
from extension.secrets.value import headers_from_value

KEY = "k3y-0123456789-SECRET"


# -- values to headers ---------------------------------------------------------------------------------------


def test_a_whole_value_is_a_header_list_like_otel_exporter_otlp_headers() -> None:
    headers = headers_from_value(f"X-API-Key={KEY}, dataset = my%20team ,", json_key=None, header_name=None)

    assert headers == {"x-api-key": KEY, "dataset": "my team"}


def test_a_named_header_takes_the_value_verbatim_but_trimmed() -> None:
    assert headers_from_value(f"{KEY}=\n", json_key=None, header_name="x-api-key") == {"x-api-key": f"{KEY}="}


def test_a_json_key_picks_one_string_out_of_an_object() -> None:
    value = orjson.dumps({"apiKey": KEY, "other": "x"}).decode()

    assert headers_from_value(value, json_key="apiKey", header_name="x-api-key") == {"x-api-key": KEY}
    assert headers_from_value(orjson.dumps({"h": f"a={KEY}"}).decode(), json_key="h", header_name=None) == {
        "a": KEY}


@pytest.mark.parametrize(("value", "json_key", "header_name", "code"), [
    (orjson.dumps({"apiKey": KEY}).decode(), "apikey", None, "JsonKeyMissing"),
    (orjson.dumps([KEY]).decode(), "apiKey", None, "NotJsonObject"),
    (f"not json {KEY}", "apiKey", None, "NotJsonObject"),
    (orjson.dumps({"apiKey": 12345678}).decode(), "apiKey", None, "JsonValueNotString"),
    (KEY, None, None, "InvalidHeaders"),  # a bare key, and no header name to put it under
    (f"x-api-key={KEY}\r\nx: y", None, None, "InvalidHeaders"),
    (f"bad name={KEY}", None, None, "InvalidHeaders"),
    (f"x={KEY}%ff", None, None, "InvalidHeaders"),
    ("  ", None, "x-api-key", "InvalidHeaders"),
    (f"{KEY}\n{KEY}", None, "x-api-key", "InvalidHeaders"),
    (" , ", None, None, "InvalidHeaders"),
])
def test_a_value_that_is_not_what_the_settings_say_is_a_clear_failure_that_never_quotes_it(
    value: str, json_key: str | None, header_name: str | None, code: str
) -> None:
    failure = headers_from_value(value, json_key=json_key, header_name=header_name)

    assert isinstance(failure, Failure)
    assert failure.code == code
    assert KEY not in repr(failure) and "12345678" not in repr(failure)


def test_json_key_missing_names_the_key() -> None:
    failure = headers_from_value("{}", json_key="apiKey", header_name=None)

    assert failure == Failure(code="JsonKeyMissing", message="the JSON object has no key 'apiKey'")


# -- the AWS calls and their answers -------------------------------------------------------------------------


def test_the_requests_name_the_resource_only() -> None:
    secret = SecretSettings(service="secretsmanager", resource="arn:s", region="us-east-1", endpoint="https://x")
    parameter = SecretSettings(service="ssm", resource="/p", region="us-east-1", endpoint="https://x")

    assert (request_for(secret).target, orjson.loads(request_for(secret).body)) == (
        "secretsmanager.GetSecretValue", {"SecretId": "arn:s"})
    assert (request_for(parameter).target, orjson.loads(request_for(parameter).body)) == (
        "AmazonSSM.GetParameter", {"Name": "/p", "WithDecryption": True})
    assert request_for(parameter).headers() == {"content-type": "application/x-amz-json-1.1",
                                                "x-amz-target": "AmazonSSM.GetParameter"}


def test_successful_answers_give_the_value() -> None:
    assert read_answer("secretsmanager", 200, {}, orjson.dumps({"SecretString": KEY, "Name": "n"})) == KEY
    assert read_answer("ssm", 200, {}, orjson.dumps({"Parameter": {"Value": KEY, "Type": "SecureString"}})) == KEY


@pytest.mark.parametrize(("service", "body", "code"), [
    ("secretsmanager", b"<html>", "InvalidResponse"),
    ("secretsmanager", orjson.dumps({"SecretBinary": "AAAA"}), "SecretBinary"),
    ("ssm", orjson.dumps({"Parameter": {}}), "InvalidResponse"),
    ("ssm", b"[]", "InvalidResponse"),
])
def test_strange_successful_answers_are_failures(service: str, body: bytes, code: str) -> None:
    answer = read_answer(service, 200, {}, body)  # type: ignore[arg-type]

    assert isinstance(answer, Failure) and answer.code == code and not answer.retryable


@pytest.mark.parametrize(("status", "headers", "body", "code", "retryable"), [
    (400, {}, {"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find it."},
     "ResourceNotFoundException", False),
    (400, {}, {"__type": "com.amazonaws.ssm#ParameterNotFound"}, "ParameterNotFound", False),
    (400, {}, {"__type": "AccessDeniedException", "Message": "User: x is not authorized"}, "AccessDeniedException",
     False),
    (400, {}, {"__type": "ThrottlingException", "message": "Rate exceeded"}, "ThrottlingException", True),
    (429, {}, None, "HTTP429", True),
    (400, {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/"}, None, "ThrottlingException",
     True),
    (500, {}, {"__type": "InternalServiceError"}, "InternalServiceError", True),
    (503, {}, b"Service Unavailable", "HTTP503", True),
    (403, {}, b"<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error></Errors>"
              b"</ErrorResponse>", "SignatureDoesNotMatch", False),
    (403, {}, {"__type": "UnrecognizedClientException"}, "UnrecognizedClientException", False),
])
def test_error_answers_say_the_aws_code_and_whether_to_retry(
    status: int, headers: dict[str, str], body: object, code: str, retryable: bool
) -> None:
    raw = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)

    failure = read_error(status, headers, raw)

    assert (failure.code, failure.status, failure.retryable) == (code, status, retryable)


def test_an_aws_message_is_kept_on_one_bounded_line() -> None:
    failure = read_error(400, {}, orjson.dumps({"__type": "X", "message": "a\n  b" + "c" * 1000}))

    assert failure.message.startswith("a bccc") and len(failure.message) == 300


def test_backoff_doubles_up_to_a_cap_with_half_of_it_random() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=0.2, cap_s=1.0)

    assert [policy.delay_s(attempt, 0.0) for attempt in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    assert [policy.delay_s(attempt, 0.999999) for attempt in (1, 4)] == pytest.approx([0.2, 1.0])


# -- credentials ---------------------------------------------------------------------------------------------


def test_key_variables_come_first() -> None:
    source = credential_source({"AWS_ACCESS_KEY_ID": "ASIA1", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"})

    assert source == Credentials(access_key_id="ASIA1", secret_access_key="s", session_token="t")


def test_the_container_endpoint_when_there_are_no_keys() -> None:
    snapstart = credential_source({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9001/2021-04-23/credentials",
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Zm9vYmFy"})
    ecs = credential_source({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
                             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/token"})

    assert snapstart == ContainerEndpoint(url="http://127.0.0.1:9001/2021-04-23/credentials", token="Zm9vYmFy")
    assert "Zm9vYmFy" not in repr(snapstart)
    assert ecs == ContainerEndpoint(url="http://169.254.170.2/v2/credentials/x", token_file="/var/token")


@pytest.mark.parametrize("env", [
    {},
    {"AWS_ACCESS_KEY_ID": "AKIA1"},
    {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://credentials.example.com/"},  # plain http off the host
    {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "file:///etc/passwd"},
    {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://creds.example.com/", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\nb"},
])
def test_no_usable_credentials_is_a_reason_not_an_exception(env: dict[str, str]) -> None:
    source = credential_source(env)

    assert isinstance(source, Failure) and source.code == "CredentialsUnavailable"


def test_the_container_answer_is_read() -> None:
    answer = orjson.dumps({"AccessKeyId": "ASIA2", "SecretAccessKey": "s", "Token": "t",
                           "Expiration": "2030-01-01T00:00:00Z"})

    assert read_container_answer(answer) == Credentials(access_key_id="ASIA2", secret_access_key="s",
                                                        session_token="t")
    assert isinstance(read_container_answer(b'{"AccessKeyId": "x"}'), Failure)
    assert isinstance(read_container_answer(b"oops"), Failure)


# -- the cache -----------------------------------------------------------------------------------------------


def result(headers: dict[str, str] | None = None, code: str | None = None) -> SecretResult:
    failure = None if code is None else Failure(code=code, message="m")
    return SecretResult(service="ssm", resource="/p", headers=headers or {}, failure=failure, attempts=1)


def test_without_refresh_the_cache_fetches_once() -> None:
    cache = HeaderCache(refresh_s=None)

    assert cache.begin(now=100.0)
    assert not cache.begin(now=100.0)  # one fetch at a time
    assert cache.record(result({"x-api-key": KEY}), now=101.0)
    assert cache.ready and cache.headers == {"x-api-key": KEY}
    assert not cache.due(now=1e12)
    assert cache.merged({"x-api-key": "configured", "dataset": "d"}) == {"x-api-key": KEY, "dataset": "d"}
    assert KEY not in repr(cache)


def test_with_refresh_failures_keep_the_last_good_headers_and_are_reported_once() -> None:
    cache = HeaderCache(refresh_s=60)
    assert cache.begin(now=0.0) and cache.record(result({"a": "1"}), now=0.0)

    assert not cache.due(now=59.0)
    assert cache.begin(now=60.0)
    assert cache.record(result(code="ThrottlingException"), now=60.0)  # the first failure: log it
    assert cache.headers == {"a": "1"}
    assert cache.begin(now=120.0)
    assert not cache.record(result(code="ThrottlingException"), now=120.0)  # the same again: quiet
    assert cache.begin(now=180.0)
    assert cache.record(result(code="AccessDeniedException"), now=180.0)  # a new reason: log it
    assert cache.begin(now=240.0)
    assert cache.record(result({"a": "2"}), now=240.0)  # recovered: log it
    assert cache.headers == {"a": "2"}
    assert cache.begin(now=300.0)
    assert not cache.record(result({"a": "2"}), now=300.0)  # routine refresh: quiet


def test_a_clock_that_went_back_makes_a_refresh_due() -> None:
    cache = HeaderCache(refresh_s=3600)
    cache.begin(now=1000.0)
    cache.record(result({"a": "1"}), now=1000.0)

    assert cache.due(now=10.0)


def test_a_failed_first_fetch_leaves_the_cache_not_ready() -> None:
    cache = HeaderCache(refresh_s=None)
    cache.begin(now=0.0)

    assert cache.record(result(code="ResourceNotFoundException"), now=0.0)
    assert not cache.ready and cache.headers == {}


def test_results_show_header_names_and_failure_codes_never_values() -> None:
    ok = result({"x-api-key": KEY})
    failed = result(code="AccessDeniedException")

    assert KEY not in repr(ok) and "x-api-key" in repr(ok)
    assert ok.log_fields() == {"service": "ssm", "resource": "/p", "attempts": 1, "duration_ms": 0.0,
                               "headers": ["x-api-key"]}
    assert failed.log_fields()["error_code"] == "AccessDeniedException"
