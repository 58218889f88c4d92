"""The exporter's API key kept in Secrets Manager: fetched by the extension running as a layer in the sandbox,
sent as a header to the collector, never printed; a missing secret leaves the function alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from support import EXAMPLES, SettingsFactory

from sandbox.otlp_receiver import OTLPReceiver
from sandbox.runner import LocalLambda

API_KEY = "k3y-f0r-the-c0llect0r-9c1d5e"


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[str, str]]:
    """A real Secrets Manager API on loopback holding the collector's key; yields (endpoint, secret ARN)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    arn = client.create_secret(Name="otel/collector", SecretString=f"x-api-key={API_KEY}")["ARN"]
    try:
        yield url, arn
    finally:
        server.stop()


async def run(make_settings: SettingsFactory, layer: Path, work_dir: Path, receiver: OTLPReceiver,
              env: dict[str, str]) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    settings = make_settings(function_dir=EXAMPLES, handler="app.succeed", layer_dir=layer, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_LAMBDA_FLUSH": "end", **env})
    async with LocalLambda(settings, work_dir=work_dir, on_output=lambda source, line: lines.append(line)) as box:
        records = [await box.invoke() for _ in range(2)]
    return [r.status for r in records], lines


async def test_headers_come_from_the_secret(make_settings: SettingsFactory, built_layer: Path, work_dir: Path,
                                            aws: tuple[str, str]) -> None:
    url, arn = aws
    async with OTLPReceiver(port=0) as receiver:
        statuses, lines = await run(make_settings, built_layer, work_dir, receiver,
                                    {"AWS_ENDPOINT_URL": url, "OTEL_LAMBDA_HEADERS_SECRET_ARN": arn})
        assert receiver.spans(), "\n".join(lines)
        assert {request.headers.get("x-api-key") for request in receiver.requests} == {API_KEY}
    assert statuses == ["success", "success"]
    assert any('"event":"headers_secret_read"' in line for line in lines)
    assert not any(API_KEY in line for line in lines)  # the value is never printed


async def test_a_missing_secret_means_pass_through(make_settings: SettingsFactory, built_layer: Path,
                                                   work_dir: Path, aws: tuple[str, str]) -> None:
    url, arn = aws
    async with OTLPReceiver(port=0) as receiver:
        statuses, lines = await run(make_settings, built_layer, work_dir, receiver,
                                    {"AWS_ENDPOINT_URL": url,
                                     "OTEL_LAMBDA_HEADERS_SECRET_ARN": arn.replace("otel/collector", "otel/gone")})
        assert not receiver.spans()
    assert statuses == ["success", "success"]
    [failure] = [line for line in lines if '"event":"headers_secret_failed"' in line]
    assert "ResourceNotFoundException" in failure and "otel/gone" in failure
