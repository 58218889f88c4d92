"""One fetch of the headers secret, start to end: credentials, the signed call, the value turned into headers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from extension.http.client import HTTPClient
from extension.secrets.cache import SecretResult
from extension.secrets.client import fetch_credentials, fetch_value
from extension.secrets.credentials import ContainerEndpoint, credential_source
from extension.secrets.protocol import Failure, RetryPolicy
from extension.secrets.settings import SecretSettings
from extension.secrets.value import headers_from_value

# INIT has 10 s for every extension and the runtime together; a secret that takes longer is better
# reported as failed, so the extension leaves the function alone instead of failing its INIT.
FETCH_BUDGET_S: Final = 4.0
DEFAULT_RETRY: Final = RetryPolicy()


async def resolve_headers(
    settings: SecretSettings,
    session: HTTPClient,
    *,
    env: Mapping[str, str],
    clock: Callable[[], float] = time.time,
    budget_s: float = FETCH_BUDGET_S,
    policy: RetryPolicy = DEFAULT_RETRY,
    jitter: Callable[[], float] = random.random,
) -> SecretResult:
    """Fetch the secret and turn it into headers within `budget_s`; never raises for an AWS, network or value
    problem (those are a failed SecretResult), only on cancellation or a bug.

    `env` supplies the credentials (read now, not at start-up: SnapStart hands out new ones after a restore);
    `clock` is the wall clock, Unix seconds, that dates the signatures.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + budget_s

    def result(*, headers: Mapping[str, str] | None = None, failure: Failure | None = None,
               attempts: int = 0) -> SecretResult:
        return SecretResult(service=settings.service, resource=settings.resource,
                            headers=MappingProxyType(dict(headers or {})),
                            failure=failure, attempts=attempts, duration_s=loop.time() - started)

    source = credential_source(env)
    if isinstance(source, Failure):
        return result(failure=source)
    if isinstance(source, ContainerEndpoint):
        credentials = await fetch_credentials(session, source, policy=policy, deadline=deadline, jitter=jitter)
        if isinstance(credentials, Failure):
            return result(failure=credentials)
    else:
        credentials = source
    value, attempts = await fetch_value(session, settings, credentials, clock=clock, policy=policy,
                                        deadline=deadline, jitter=jitter)
    if isinstance(value, Failure):
        return result(failure=value, attempts=attempts)
    headers = headers_from_value(value, json_key=settings.json_key, header_name=settings.header_name)
    if isinstance(headers, Failure):
        return result(failure=headers, attempts=attempts)
    return result(headers=headers, attempts=attempts)
