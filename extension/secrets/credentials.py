"""Where the function's AWS credentials come from: key variables, or the container credentials endpoint.

| Variable                                | Meaning                                                             |
|-----------------------------------------|---------------------------------------------------------------------|
| AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY | the execution role's keys (Lambda sets them); used first           |
| AWS_SESSION_TOKEN                       | their session token, sent as x-amz-security-token                   |
| AWS_CONTAINER_CREDENTIALS_FULL_URI      | endpoint serving keys as JSON, when no keys are set (SnapStart)     |
| AWS_CONTAINER_CREDENTIALS_RELATIVE_URI  | path on http://169.254.170.2 (ECS); FULL_URI wins                   |
| AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE  | file holding the endpoint's Authorization value; wins over the next |
| AWS_CONTAINER_AUTHORIZATION_TOKEN       | the endpoint's Authorization value                                  |

As the AWS SDKs do, a plain-http endpoint must be on loopback or a container-agent address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from extension.secrets.protocol import Failure
from extension.secrets.sigv4 import Credentials

ECS_HOST: Final = "http://169.254.170.2"
# The ECS and EKS Pod Identity agents; plain http is allowed to these and to loopback only.
_AGENT_ADDRESSES: Final = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerEndpoint:
    """The endpoint to ask for credentials, and how to authorize: a token, or a file read at each call."""

    url: str
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None


# Why no credentials can be had is a Failure with code CredentialsUnavailable; it names variables, not values.
CredentialSource = Credentials | ContainerEndpoint | Failure


def credential_source(env: Mapping[str, str]) -> CredentialSource:
    """The keys in `env`, else its container endpoint, else why neither can be used."""
    def text(name: str) -> str | None:
        return env.get(name, "").strip() or None

    key_id, secret = text("AWS_ACCESS_KEY_ID"), text("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        return Credentials(access_key_id=key_id, secret_access_key=secret, session_token=text("AWS_SESSION_TOKEN"))
    full, relative = text("AWS_CONTAINER_CREDENTIALS_FULL_URI"), text("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if full is None and relative is None:
        if key_id or secret:
            return _unavailable("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")
        return _unavailable("neither AWS_ACCESS_KEY_ID nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set")
    url = full if full is not None else f"{ECS_HOST}/{(relative or '').lstrip('/')}"
    if not _allowed(url):
        return _unavailable("the container credentials URI must be https, or http on loopback or a container "
                            "agent address")
    token = text("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    if token is not None and re.search(r"[\r\n\0]", token):
        return _unavailable("AWS_CONTAINER_AUTHORIZATION_TOKEN holds control characters")
    return ContainerEndpoint(url=url, token=token, token_file=text("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))


def read_container_answer(body: bytes) -> Credentials | Failure:
    """The keys in the endpoint's JSON answer (AccessKeyId, SecretAccessKey, Token). Its Expiration is not
    kept: the endpoint is asked again on every fetch, and a fetch takes seconds, the keys hours."""
    try:
        answer: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _unavailable("the container credentials endpoint did not answer JSON")
    if not isinstance(answer, dict):
        return _unavailable("the container credentials endpoint did not answer a JSON object")
    key_id, secret, token = answer.get("AccessKeyId"), answer.get("SecretAccessKey"), answer.get("Token")
    if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
        return _unavailable("the container credentials answer has no AccessKeyId and SecretAccessKey")
    return Credentials(access_key_id=key_id, secret_access_key=secret,
                       session_token=token if isinstance(token, str) and token else None)


def _unavailable(reason: str) -> Failure:
    return Failure(code="CredentialsUnavailable", message=reason)


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    # A host name other than localhost is refused: what it resolves to may change under us.
    host = parts.hostname
    loopback = host in ("localhost", "::1") or re.fullmatch(r"127(?:\.\d{1,3}){3}", host) is not None
    return loopback or host in _AGENT_ADDRESSES

