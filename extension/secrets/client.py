"""The HTTP side: signed calls to Secrets Manager or SSM, and the container credentials endpoint, retried."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

from extension import __version__
from extension.errors import HTTPMessageError
from extension.http.client import HTTPClient
from extension.secrets.credentials import ContainerEndpoint, read_container_answer
from extension.secrets.protocol import RETRYABLE_STATUS, Failure, RetryPolicy, read_answer, request_for
from extension.secrets.settings import SecretSettings
from extension.secrets.sigv4 import Credentials, sign

USER_AGENT: Final = f"lambda-otel-extension/{__version__}"
# A SecretString is at most 64 KiB, and JSON escaping can make its answer several times larger; anything
# beyond this is not an answer from Secrets Manager or SSM, and must not fill a 128 MB sandbox.
MAX_ANSWER_BYTES: Final = 1024 * 1024
_MAPPED: Final = (TimeoutError, OSError, HTTPMessageError, ValueError)
_T = TypeVar("_T")


async def fetch_value(
    session: HTTPClient,
    settings: SecretSettings,
    credentials: Credentials,
    *,
    clock: Callable[[], float],
    policy: RetryPolicy,
    deadline: float,
    jitter: Callable[[], float],
) -> tuple[str | Failure, int]:
    """The secret's text, or why not, and the number of requests sent; `deadline` is in loop time."""
    call = request_for(settings)
    url = f"{settings.endpoint}/"

    async def attempt(timeout_s: float) -> str | Failure:
        # Signed again on every attempt: a signature's date must be within minutes of the server's clock.
        signed = sign("POST", url, call.headers(), call.body, credentials=credentials,
                      region=settings.region, service=settings.service, now=clock())
        status, headers, body = await _send(session, "POST", url, {**signed.headers, "user-agent": USER_AGENT},
                                            call.body, timeout_s)
        return read_answer(settings.service, status, headers, body)

    return await _retrying(attempt, policy=policy, deadline=deadline, jitter=jitter)


async def fetch_credentials(
    session: HTTPClient,
    endpoint: ContainerEndpoint,
    *,
    policy: RetryPolicy,
    deadline: float,
    jitter: Callable[[], float],
) -> Credentials | Failure:
    """Keys from the container credentials endpoint (SnapStart, ECS); asked on each fetch, as they expire."""
    async def attempt(timeout_s: float) -> Credentials | Failure:
        token = _read_token(endpoint.token_file) if endpoint.token_file else endpoint.token
        if endpoint.token_file and token is None:
            return Failure(code="CredentialsUnavailable",
                           message="AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE cannot be read or holds control characters")
        headers = {"user-agent": USER_AGENT, **({"authorization": token} if token else {})}
        status, _, body = await _send(session, "GET", endpoint.url, headers, b"", timeout_s)
        if not 200 <= status < 300:
            return Failure(code="CredentialsUnavailable", status=status, retryable=status in RETRYABLE_STATUS,
                           message=f"the container credentials endpoint answered HTTP {status}")
        return read_container_answer(body)

    credentials, _ = await _retrying(attempt, policy=policy, deadline=deadline, jitter=jitter)
    if isinstance(credentials, Failure) and credentials.code != "CredentialsUnavailable":
        reason = f"the container credentials endpoint failed: {credentials.message}"
        return Failure(code="CredentialsUnavailable", message=reason, status=credentials.status)
    return credentials


async def _retrying(
    attempt: Callable[[float], Awaitable[_T | Failure]],
    *,
    policy: RetryPolicy,
    deadline: float,
    jitter: Callable[[], float],
) -> tuple[_T | Failure, int]:
    """Run `attempt(timeout_s)` until it succeeds, fails for good, runs out of attempts or of time."""
    loop = asyncio.get_running_loop()
    for number in range(1, policy.max_attempts + 1):
        remaining_s = deadline - loop.time()
        if remaining_s <= 0:
            return Failure(code="Timeout", message="the time budget ran out", retryable=True), number - 1
        try:
            outcome = await attempt(remaining_s)
        except _MAPPED as exc:
            outcome = Failure(code="Timeout" if isinstance(exc, TimeoutError) else "ConnectionFailed",
                              message=_describe(exc, remaining_s), retryable=True)
        if not isinstance(outcome, Failure) or not outcome.retryable or number == policy.max_attempts:
            return outcome, number
        pause_s = policy.delay_s(number, jitter())
        if loop.time() + pause_s >= deadline:  # no time for another try: report what we have
            return outcome, number
        await asyncio.sleep(pause_s)
    raise AssertionError("unreachable: the last attempt always returns")  # pragma: no cover


async def _send(
    session: HTTPClient, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
) -> tuple[int, dict[str, str], bytes]:
    response = await session.request(method, url, headers=headers, body=body, timeout_s=timeout_s,
                                     max_response_bytes=MAX_ANSWER_BYTES)
    # A body past the limit comes back empty: read as "not JSON", an InvalidResponse or the plain status.
    return response.status, {} if response.truncated else response.headers, response.body


def _read_token(path: str) -> str | None:
    """The token file's text; read on every call because agents rotate it. A few bytes on a local disk, so the
    blocking read costs less than handing it to a thread would."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None if not token or re.search(r"[\r\n\0]", token) else token


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:.3g} s"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
