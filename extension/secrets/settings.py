"""Where the exporter's headers secret lives: `SecretSettings.from_env(env)`, strict, every problem at once.

Set at most one of the first two; the others only refine them. An empty value counts as unset.

| Variable                        | Default           | Accepted values, meaning                                     |
|---------------------------------|-------------------|--------------------------------------------------------------|
| OTEL_LAMBDA_HEADERS_SECRET_ARN  | unset             | Secrets Manager secret ARN (full or partial); the region     |
|                                 |                   | called is the ARN's                                          |
| OTEL_LAMBDA_HEADERS_PARAMETER   | unset             | SSM parameter name (/otel/api-key) or ARN, read with         |
|                                 |                   | WithDecryption, so a SecureString is decrypted               |
| OTEL_LAMBDA_HEADERS_JSON_KEY    | unset (the whole) | the value is a JSON object: use this key's string value      |
| OTEL_LAMBDA_HEADERS_HEADER_NAME | unset (a list)    | a header name (x-api-key): the value is that header's value; |
|                                 |                   | unset: the value is a k=v,k2=v2 list, percent-decoded, in    |
|                                 |                   | the syntax of OTEL_EXPORTER_OTLP_HEADERS                     |
| OTEL_LAMBDA_HEADERS_REFRESH_S   | unset (never)     | integer seconds >= 60: fetch again this often; unset: once   |
|                                 |                   | per sandbox                                                  |
| AWS_REGION                      | (Lambda sets it)  | the region of a parameter given by name                      |
| AWS_ENDPOINT_URL_SECRETSMANAGER | see below         | http(s) URL of Secrets Manager (tests, VPC endpoints)        |
| AWS_ENDPOINT_URL_SSM            | see below         | http(s) URL of SSM                                           |
| AWS_ENDPOINT_URL                | see below         | http(s) URL of both, when the specific one is unset          |

The default endpoint is https://<service>.<region>.amazonaws.com (.amazonaws.com.cn in China). The fetched
headers are merged over the OTEL_EXPORTER_OTLP_*HEADERS ones, names lowercased. Credentials are read when
fetching, not here: see extension.secrets.credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from extension.errors import ConfigError

Service = Literal["secretsmanager", "ssm"]

SECRET_ARN: Final = "OTEL_LAMBDA_HEADERS_SECRET_ARN"  # noqa: S105 -- a variable's name, not a secret
PARAMETER: Final = "OTEL_LAMBDA_HEADERS_PARAMETER"
JSON_KEY: Final = "OTEL_LAMBDA_HEADERS_JSON_KEY"
HEADER_NAME: Final = "OTEL_LAMBDA_HEADERS_HEADER_NAME"
REFRESH_S: Final = "OTEL_LAMBDA_HEADERS_REFRESH_S"
# A shorter interval buys nothing during a key rotation and costs an API call (billed) per sandbox each time.
MIN_REFRESH_S: Final = 60

_REGION: Final = r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}"
_ARN: Final = r"arn:aws(?:-[a-z]+)*:(?P<service>[a-z]+):(?P<region>" + _REGION + r"):\d{12}:(?P<resource>.+)"
_SECRET: Final = re.compile(r"secret:[A-Za-z0-9/_+=.@-]{1,512}")
_PARAMETER: Final = re.compile(r"parameter/[A-Za-z0-9_.\-/]{1,2048}")
_PARAMETER_NAME: Final = re.compile(r"[A-Za-z0-9_.\-/]{1,2048}")
_HEADER: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENDPOINT_VARIABLES: Final[Mapping[Service, str]] = {
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETSMANAGER",
    "ssm": "AWS_ENDPOINT_URL_SSM",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretSettings:
    """One secret whose value becomes OTLP headers: which store, which resource, and how to read it."""

    service: Service
    resource: str  # the secret's ARN, or the parameter's name or ARN, as configured (a name, never a value)
    region: str
    endpoint: str  # base URL, no trailing slash
    json_key: str | None = None
    header_name: str | None = None  # lowercased; None: the value is a k=v,k2=v2 list
    refresh_s: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecretSettings | None:
        """None when no secret is configured; raises ConfigError listing every problem."""
        problems: list[str] = []

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        secret_arn, parameter = text(SECRET_ARN), text(PARAMETER)
        json_key, header_name, refresh = text(JSON_KEY), text(HEADER_NAME), text(REFRESH_S)
        if secret_arn is None and parameter is None:
            problems += [f"{name}: has no effect without {SECRET_ARN} or {PARAMETER}"
                         for name in (JSON_KEY, HEADER_NAME, REFRESH_S) if text(name) is not None]
            if problems:
                raise ConfigError(problems)
            return None
        if secret_arn is not None and parameter is not None:
            problems.append(f"{SECRET_ARN}, {PARAMETER}: set only one of them")
        service: Service = "secretsmanager" if secret_arn is not None else "ssm"
        resource = secret_arn or parameter or ""
        region = _region(service, resource, text("AWS_REGION"), problems)
        if header_name is not None and not _HEADER.fullmatch(header_name):
            problems.append(f"{HEADER_NAME}: is not a valid HTTP header name; give only the name, like x-api-key")
        settings = cls(
            service=service,
            resource=resource,
            region=region,
            endpoint=_endpoint(service, region, env, problems),
            json_key=json_key,
            header_name=header_name.lower() if header_name else None,
            refresh_s=_refresh_s(refresh, problems),
        )
        if problems:
            raise ConfigError(problems)
        return settings


def _region(service: Service, resource: str, aws_region: str | None, problems: list[str]) -> str:
    """The region in the ARN, else AWS_REGION (a parameter given by name)."""
    if service == "secretsmanager":
        match = _arn(resource, "secretsmanager", _SECRET)
        if match is None:
            problems.append(f"{SECRET_ARN}: {_quoted(resource)}is not a Secrets Manager secret ARN "
                            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)")
            return aws_region or ""
        return match["region"]
    if resource.startswith("arn:"):
        match = _arn(resource, "ssm", _PARAMETER)
        if match is None:
            problems.append(f"{PARAMETER}: {_quoted(resource)}is not an SSM parameter ARN "
                            "(arn:aws:ssm:<region>:<account>:parameter/<name>)")
            return aws_region or ""
        return match["region"]
    if not _PARAMETER_NAME.fullmatch(resource):
        problems.append(f"{PARAMETER}: is not a parameter name (letters, digits, _ . - /) or ARN")
    if aws_region is None:
        problems.append(f"AWS_REGION: required to read {PARAMETER} by name; or give the parameter's ARN")
        return ""
    if not re.fullmatch(_REGION, aws_region):
        problems.append(f"AWS_REGION: {aws_region!r} is not a region (like us-east-1)")
    return aws_region


def _arn(resource: str, service: Service, pattern: re.Pattern[str]) -> re.Match[str] | None:
    match = re.fullmatch(_ARN, resource)
    ok = match is not None and match["service"] == service and pattern.fullmatch(match["resource"])
    return match if ok else None


def _endpoint(service: Service, region: str, env: Mapping[str, str], problems: list[str]) -> str:
    for name in (_ENDPOINT_VARIABLES[service], "AWS_ENDPOINT_URL"):
        value = env.get(name, "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            problems.append(f"{name}: is not accepted; use an http:// or https:// URL with a host")
        return value.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}"


def _refresh_s(value: str | None, problems: list[str]) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"\+?\d+", value) or int(value) < MIN_REFRESH_S:
        problems.append(f"{REFRESH_S}: {value!r} is not accepted; use an integer >= {MIN_REFRESH_S} (seconds)")
        return None
    return int(value)


def _quoted(resource: str) -> str:
    # Only a malformed ARN is quoted: anything else may be the API key itself, pasted into the wrong variable.
    return f"{resource!r} " if resource.startswith("arn:") else ""
