"""The two AWS JSON 1.1 calls we make, what their answers mean, and when to try again: pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from extension.secrets.settings import SecretSettings, Service

CONTENT_TYPE: Final = "application/x-amz-json-1.1"
_TARGETS: Final[Mapping[Service, str]] = {
    "secretsmanager": "secretsmanager.GetSecretValue",
    "ssm": "AmazonSSM.GetParameter",
}
# Error codes that mean "too many requests" across AWS services; the SDKs retry them with backoff.
THROTTLING_CODES: Final = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "RequestThrottled", "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})
TRANSIENT_CODES: Final = frozenset({
    "InternalServiceError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException",
})
RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_MAX_MESSAGE_CHARS: Final = 300
# The query protocol's XML error shape: moto answers authentication failures this way even for JSON APIs.
_XML_CODE: Final = re.compile(rb"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE: Final = re.compile(rb"<Message>([^<]{0,1000})</Message>")


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request to send: the API's target and its JSON body (which names the resource, holds no secret)."""

    target: str
    body: bytes

    def headers(self) -> dict[str, str]:
        """The headers to sign besides host and date."""
        return {"content-type": CONTENT_TYPE, "x-amz-target": self.target}


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """Why there is no value: an AWS error code (AccessDeniedException) or one of ours; never the value."""

    code: str
    message: str
    status: int | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts here and in time by the caller's deadline."""

    max_attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 2.0

    def delay_s(self, attempt: int, jitter: float) -> float:
        """The pause after failed attempt `attempt` (1-based); `jitter` in [0, 1) spreads sandboxes apart."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        # Half fixed, half random: throttled sandboxes that started together stop retrying together.
        return ceiling / 2 + jitter * ceiling / 2


def request_for(settings: SecretSettings) -> Call:
    """GetSecretValue (AWSCURRENT) or GetParameter with decryption, for the configured resource."""
    payload: dict[str, Any]
    if settings.service == "secretsmanager":
        payload = {"SecretId": settings.resource}
    else:
        payload = {"Name": settings.resource, "WithDecryption": True}
    return Call(target=_TARGETS[settings.service], body=orjson.dumps(payload))


def read_answer(service: Service, status: int, headers: Mapping[str, str], body: bytes) -> str | Failure:
    """The secret's text from a 2xx answer, or the failure any answer means."""
    if not 200 <= status < 300:
        return read_error(status, headers, body)
    try:
        answer: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Failure(code="InvalidResponse", message="the answer is not JSON", status=status)
    if service == "secretsmanager":
        value = answer.get("SecretString") if isinstance(answer, dict) else None
        if value is None and isinstance(answer, dict) and "SecretBinary" in answer:
            return Failure(code="SecretBinary", status=status,
                           message="the secret holds SecretBinary; store the headers as a SecretString")
    else:
        parameter = answer.get("Parameter") if isinstance(answer, dict) else None
        value = parameter.get("Value") if isinstance(parameter, dict) else None
    if not isinstance(value, str):
        return Failure(code="InvalidResponse", message="the answer holds no string value", status=status)
    return value


def read_error(status: int, headers: Mapping[str, str], body: bytes) -> Failure:
    """The code and message of an AWS error answer: JSON `__type`, XML `<Code>`, `x-amzn-errortype`, the status."""
    code, message = "", ""
    try:
        answer: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict):
        code = str(answer.get("__type") or answer.get("code") or "")
        message = str(answer.get("message") or answer.get("Message") or "")
    elif (xml_code := _XML_CODE.search(body)) is not None:
        xml_message = _XML_MESSAGE.search(body)
        code = xml_code[1].decode(errors="replace")
        message = xml_message[1].decode(errors="replace") if xml_message else ""
    # `__type` may be namespaced (com.amazonaws...#Code); the header may carry a URL after a colon.
    code = code.rpartition("#")[2] or headers.get("x-amzn-errortype", "").partition(":")[0] or f"HTTP{status}"
    retryable = code in THROTTLING_CODES or code in TRANSIENT_CODES or status in RETRYABLE_STATUS
    return Failure(code=code, message=_clean(message), status=status, retryable=retryable)


def _clean(message: str) -> str:
    """AWS's message, on one line and bounded; it quotes the request (a resource name), never a value."""
    return re.sub(r"\s+", " ", message).strip()[:_MAX_MESSAGE_CHARS]
