"""resolve_headers against a real AWS API implementation: moto in server mode on loopback, checking signatures and IAM.

Moto evaluates IAM policies for Secrets Manager and SSM against the resource "*" only, so least privilege on one
ARN cannot be checked here; access denied comes from an explicit Deny. Moto cannot throttle: a small proxy in
front of it answers ThrottlingException first, then forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import boto3  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer

from extension import log
from extension.http.client import HTTPClient
from extension.secrets.cache import HeaderCache, SecretResult
from extension.secrets.protocol import RetryPolicy
from extension.secrets.resolve import resolve_headers
from extension.secrets.settings import SecretSettings

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Distinct values, so a leak of any of them anywhere is found by a plain substring search.
SM_KEY = "sm-k3y-5b1e0c7d9f2a4e6b"
JSON_KEY_VALUE = "json-k3y-8c3d2e1f0a9b"
SSM_KEY = "ssm-k3y-a7b6c5d4e3f2"
BARE_KEY = "bare-k3y-0f1e2d3c4b5a"
ALL_VALUES = (SM_KEY, JSON_KEY_VALUE, SSM_KEY, BARE_KEY)
FAST = RetryPolicy(max_attempts=4, base_s=0.01, cap_s=0.05)


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeAWS:
    url: str
    role: dict[str, str]  # the function's environment: role session keys, as Lambda sets them
    denied: dict[str, str]  # keys of a user whose policy denies both reads
    role_keys: dict[str, str]  # the role session as the container credentials endpoint serves it
    secrets: dict[str, str]  # name -> ARN


def _policy(effect: str, actions: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": actions, "Resource": "*"}]})


@pytest.fixture(scope="module")
def aws() -> Iterator[FakeAWS]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    def client(service: str, keys: dict[str, str]) -> Any:
        return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id=keys["AccessKeyId"],
                            aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=keys.get("SessionToken"))

    try:
        iam = client("iam", {"AccessKeyId": "bootstrap", "SecretAccessKey": "bootstrap"})
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_policy("Allow", ["*"]))
        admin = iam.create_access_key(UserName="admin")["AccessKey"]
        _moto_api(url, "reset-auth", b"0")  # from here on, every request must be signed by a known key and allowed
        iam = client("iam", admin)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
            "Service": "lambda.amazonaws.com", "AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"}}]}
        iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="fn-role", PolicyName="read-headers",
                            PolicyDocument=_policy("Allow", ["secretsmanager:GetSecretValue", "ssm:GetParameter"]))
        role = client("sts", admin).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/fn-role",
                                                RoleSessionName="fn-session")["Credentials"]
        iam.create_user(UserName="denied")
        iam.put_user_policy(UserName="denied", PolicyName="deny",
                            PolicyDocument=_policy("Deny", ["secretsmanager:GetSecretValue", "ssm:GetParameter"]))
        denied = iam.create_access_key(UserName="denied")["AccessKey"]
        sm = client("secretsmanager", admin)
        secrets = {name: sm.create_secret(Name=name, SecretString=value)["ARN"] for name, value in {
            "otel/headers": f"x-api-key={SM_KEY},dataset=prod",
            "otel/json": json.dumps({"apiKey": JSON_KEY_VALUE, "team": "obs"}),
            "otel/bare": BARE_KEY,
        }.items()}
        client("ssm", admin).put_parameter(Name="/otel/api-key", Value=SSM_KEY, Type="SecureString")
        base = {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": url}
        yield FakeAWS(
            url=url,
            role={**base, "AWS_ACCESS_KEY_ID": role["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
                  "AWS_SESSION_TOKEN": role["SessionToken"]},
            denied={**base, "AWS_ACCESS_KEY_ID": denied["AccessKeyId"],
                    "AWS_SECRET_ACCESS_KEY": denied["SecretAccessKey"]},
            role_keys={"AccessKeyId": role["AccessKeyId"], "SecretAccessKey": role["SecretAccessKey"],
                       "Token": role["SessionToken"], "Expiration": role["Expiration"].isoformat()},
            secrets=secrets,
        )
    finally:
        _moto_api(url, "reset-auth", b"inf")  # moto's auth switch is process-wide
        _moto_api(url, "reset", b"")
        server.stop()


def _moto_api(url: str, action: str, body: bytes) -> None:
    request = urllib.request.Request(f"{url}/moto-api/{action}", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10):
        pass


async def fetch(env: dict[str, str], **settings: str) -> SecretResult:
    """One fetch with the settings named without their prefix (secret_arn=... is OTEL_LAMBDA_HEADERS_SECRET_ARN)."""
    return await fetch_within(5.0, env, **settings)


async def fetch_within(budget_s: float, env: dict[str, str], **settings: str) -> SecretResult:
    parsed = SecretSettings.from_env({**env, **{f"OTEL_LAMBDA_HEADERS_{k.upper()}": v for k, v in settings.items()}})
    assert parsed is not None
    async with HTTPClient() as session:
        return await resolve_headers(parsed, session, env=env, policy=FAST, budget_s=budget_s)


# -- success -------------------------------------------------------------------------------------------------


async def test_a_secret_holding_a_header_list(aws: FakeAWS) -> None:
    result = await fetch(aws.role, secret_arn=aws.secrets["otel/headers"])

    assert result.ok and result.attempts == 1
    assert result.headers == {"x-api-key": SM_KEY, "dataset": "prod"}


async def test_one_key_of_a_json_secret_as_one_header(aws: FakeAWS) -> None:
    result = await fetch(aws.role, secret_arn=aws.secrets["otel/json"], json_key="apiKey", header_name="X-API-Key")

    assert result.headers == {"x-api-key": JSON_KEY_VALUE}


@pytest.mark.parametrize("parameter", ["/otel/api-key", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/otel/api-key"])
async def test_an_ssm_securestring_by_name_or_arn(aws: FakeAWS, parameter: str) -> None:
    result = await fetch(aws.role, parameter=parameter, header_name="x-api-key")

    assert result.ok and result.headers == {"x-api-key": SSM_KEY}


# -- failures AWS reports ------------------------------------------------------------------------------------


async def test_a_missing_secret_or_parameter(aws: FakeAWS) -> None:
    secret = await fetch(aws.role, secret_arn=aws.secrets["otel/headers"][:-6] + "Zzzzzz")
    parameter = await fetch(aws.role, parameter="/otel/missing")

    assert (secret.failure and secret.failure.code, secret.attempts) == ("ResourceNotFoundException", 1)
    assert (parameter.failure and parameter.failure.code, parameter.attempts) == ("ParameterNotFound", 1)


@pytest.mark.parametrize("settings", [{"secret_arn": "otel/headers"}, {"parameter": "/otel/api-key"}])
async def test_access_denied_by_policy(aws: FakeAWS, settings: dict[str, str]) -> None:
    if "secret_arn" in settings:
        settings = {"secret_arn": aws.secrets[settings["secret_arn"]]}
    result = await fetch(aws.denied, **settings)

    assert result.failure is not None
    assert (result.failure.code, result.failure.status, result.attempts) == ("AccessDenied", 403, 1)
    assert "user/denied" in result.failure.message  # AWS's message names who was denied what


@pytest.mark.parametrize(("change", "code"), [
    ({"AWS_SECRET_ACCESS_KEY": "not-the-secret-key"}, "SignatureDoesNotMatch"),  # the server recomputes it
    ({"AWS_SESSION_TOKEN": "not-the-session-token"}, "InvalidClientTokenId"),
    ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000"}, "InvalidClientTokenId"),
])
async def test_the_server_rejects_a_bad_signature_or_token(aws: FakeAWS, change: dict[str, str], code: str) -> None:
    result = await fetch({**aws.role, **change}, secret_arn=aws.secrets["otel/headers"])

    assert result.failure is not None and (result.failure.code, result.failure.status) == (code, 403)


# -- failures of the value -----------------------------------------------------------------------------------


async def test_a_json_key_that_is_not_there(aws: FakeAWS) -> None:
    result = await fetch(aws.role, secret_arn=aws.secrets["otel/json"], json_key="apikey")

    assert result.failure is not None and result.failure.code == "JsonKeyMissing"
    assert result.failure.message == "the JSON object has no key 'apikey'"


async def test_a_bare_value_without_a_header_name(aws: FakeAWS) -> None:
    result = await fetch(aws.role, secret_arn=aws.secrets["otel/bare"])

    assert result.failure is not None and result.failure.code == "InvalidHeaders"
    assert "OTEL_LAMBDA_HEADERS_HEADER_NAME" in result.failure.message


# -- throttling, time limits, a proxy in front of moto -------------------------------------------------------


@asynccontextmanager
async def throttling_proxy(target: str, answers: list[tuple[int, bytes]], delay_s: float = 0.0,
                           seen: list[dict[str, str]] | None = None) -> AsyncIterator[str]:
    """Answers each of `answers` in turn, then forwards to `target` as received (its Host header included)."""
    closing = asyncio.Event()
    async with aiohttp.ClientSession(auto_decompress=False) as upstream:
        async def handle(request: web.Request) -> web.StreamResponse:
            if seen is not None:
                seen.append({name.lower(): value for name, value in request.headers.items()})
            with contextlib.suppress(TimeoutError):  # a slow answer, cut short when the proxy closes
                await asyncio.wait_for(closing.wait(), delay_s)
            if answers:
                status, body = answers.pop(0)
                return web.Response(status=status, body=body, content_type="application/x-amz-json-1.1")
            async with upstream.post(target + request.path, data=await request.read(),
                                     headers=dict(request.headers)) as response:
                return web.Response(status=response.status, body=await response.read(),
                                    content_type=response.content_type)

        runner = web.AppRunner(_app(handle))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            closing.set()
            await runner.cleanup()


def _app(handle: Any) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


THROTTLED = (400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode())


@pytest.mark.parametrize("refusal", [THROTTLED, (429, b""), (503, b"")])
async def test_throttling_is_retried_then_succeeds(aws: FakeAWS, refusal: tuple[int, bytes]) -> None:
    seen: list[dict[str, str]] = []
    async with throttling_proxy(aws.url, [refusal, refusal], seen=seen) as proxy:
        result = await fetch({**aws.role, "AWS_ENDPOINT_URL": proxy}, parameter="/otel/api-key",
                             header_name="x-api-key")

    assert result.ok and result.attempts == 3 and result.headers == {"x-api-key": SSM_KEY}
    assert len(seen) == 3 and all("authorization" in headers and "x-amz-security-token" in headers for headers in seen)


async def test_throttling_that_does_not_stop_gives_up_after_the_last_attempt(aws: FakeAWS) -> None:
    async with throttling_proxy(aws.url, [THROTTLED] * 10) as proxy:
        result = await fetch({**aws.role, "AWS_ENDPOINT_URL": proxy}, secret_arn=aws.secrets["otel/headers"])

    assert result.failure is not None and result.failure.code == "ThrottlingException"
    assert result.attempts == FAST.max_attempts


async def test_a_slow_service_is_given_up_on_at_the_budget(aws: FakeAWS) -> None:
    async with throttling_proxy(aws.url, [], delay_s=5.0) as proxy:
        result = await fetch_within(0.3, {**aws.role, "AWS_ENDPOINT_URL": proxy}, parameter="/otel/api-key")

    assert result.failure is not None and result.failure.code == "Timeout"
    assert result.duration_s < 1.0


async def test_nothing_listening_is_a_connection_failure(aws: FakeAWS) -> None:
    result = await fetch({**aws.role, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, parameter="/otel/api-key")

    assert result.failure is not None and result.failure.code == "ConnectionFailed"
    assert result.attempts == FAST.max_attempts


# -- the container credentials endpoint (SnapStart) ----------------------------------------------------------


@asynccontextmanager
async def credentials_endpoint(keys: dict[str, str], token: str) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != token:
            return web.json_response({"message": "unauthorized"}, status=401)
        return web.json_response(keys)

    runner = web.AppRunner(_app(handle))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/2021-04-23/credentials"
    finally:
        await runner.cleanup()


async def test_snapstart_credentials_from_the_container_endpoint(aws: FakeAWS, tmp_path: Path) -> None:
    base = {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": aws.url}
    (tmp_path / "token").write_text("file-token\n")
    async with credentials_endpoint(aws.role_keys, token="file-token") as uri:
        by_value = await fetch({**base, "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
                                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "file-token"}, parameter="/otel/api-key",
                               header_name="x-api-key")
        by_file = await fetch({**base, "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "token")},
                              parameter="/otel/api-key", header_name="x-api-key")
        refused = await fetch({**base, "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong"}, parameter="/otel/api-key")

    assert by_value.headers == by_file.headers == {"x-api-key": SSM_KEY}
    assert refused.failure is not None and (refused.failure.code, refused.failure.status) == (
        "CredentialsUnavailable", 401)


async def test_no_credentials_at_all(aws: FakeAWS) -> None:
    result = await fetch({"AWS_REGION": REGION, "AWS_ENDPOINT_URL": aws.url}, parameter="/otel/api-key")

    assert result.failure is not None and result.failure.code == "CredentialsUnavailable"
    assert result.attempts == 0


# -- the value never appears in a log line -------------------------------------------------------------------


@pytest.fixture
def json_logs() -> Iterator[None]:
    log.configure("debug", extension_name="test")
    yield
    log.configure()


async def test_no_secret_value_reaches_any_log_line_or_message(
    aws: FakeAWS, json_logs: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's records, moto's server and aiohttp's included
    cache = HeaderCache(refresh_s=60)
    cases = [
        (aws.role, {"secret_arn": aws.secrets["otel/headers"]}),
        (aws.role, {"secret_arn": aws.secrets["otel/json"], "json_key": "apiKey", "header_name": "x-api-key"}),
        (aws.role, {"secret_arn": aws.secrets["otel/json"], "json_key": "missing"}),
        (aws.role, {"secret_arn": aws.secrets["otel/json"]}),  # a JSON object read as a header list
        (aws.role, {"secret_arn": aws.secrets["otel/bare"]}),
        (aws.role, {"parameter": "/otel/api-key", "header_name": "x-api-key"}),
        (aws.role, {"parameter": "/otel/api-key"}),  # a bare value read as a header list
        (aws.denied, {"parameter": "/otel/api-key"}),
        ({**aws.role, "AWS_SECRET_ACCESS_KEY": "wrong"}, {"secret_arn": aws.secrets["otel/headers"]}),
    ]
    texts: list[str] = []
    for now, (env, settings) in enumerate(cases):
        result = await fetch(env, **settings)
        cache.begin(now * 60.0)
        report = cache.record(result, now * 60.0)
        if report:  # as the shell logs it: one line per new outcome
            log.get().info("secret_fetched", **result.log_fields()) if result.ok else log.get().error(
                "secret_fetch_failed", **result.log_fields())
        texts += [repr(result), str(result.log_fields()), repr(result.failure), repr(cache)]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [record.getMessage() for record in caplog.records]

    assert '"event":"secret_fetch_failed"' in captured.out  # the check below looks at real log lines
    for value in ALL_VALUES:
        assert not [text for text in texts if value in text], f"{value} leaked"
