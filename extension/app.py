"""The composition root: after the fast start, build the parts, serve the listener, run the lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import aiohttp

from extension import __version__, log
from extension.bootstrap import Started
from extension.buffer import Buffer
from extension.config import Config
from extension.convert._sdk import random_ids
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.errors import ConfigError, LambdaAPIError
from extension.events import Shutdown
from extension.export.otlp import TRACES, OTLPExporter
from extension.export.transport import AiohttpTransport, make_session
from extension.flush import FlushPolicy
from extension.flusher import Flusher
from extension.lambda_api import ExtensionsAPI
from extension.lifecycle import Timing, run_lifecycle
from extension.listener import make_app, serve
from extension.pipeline import Pipeline
from extension.secrets.settings import SecretSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """What the command line hands over: the registered name, the runtime API, and the parsed settings."""

    name: str
    runtime_api: str
    config: Config | None
    problem: ConfigError | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    """The environment, for what is read when used (credentials change after a SnapStart restore)."""


async def run(launch: Launch, started: Started) -> int:
    # The Extensions API session has no timeout at all: next may block for as long as the sandbox is frozen.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as runtime_session:
        api = ExtensionsAPI(runtime_session, launch.runtime_api, started.extension_id,
                            pending_next=started.pending_next)
        log.get().info("registered", version=__version__)
        if launch.config is None:
            log.get().error("config_invalid", problems=launch.problem.problems if launch.problem else [],
                            mode="pass_through")
            await _pass_through(api, started)
            return 0
        try:
            await _run_configured(api, launch.config, started, launch.env)
        except Exception as error:  # a bug of ours: say so to Lambda, as documented, then leave
            log.get().exception("extension_failed")
            report = api.exit_error if api.initialized else api.init_error
            with contextlib.suppress(LambdaAPIError):
                await report("Extension.UnknownReason", type(error).__name__)
            return 1
    return 0


async def _run_configured(api: ExtensionsAPI, config: Config, started: Started, env: Mapping[str, str]) -> None:
    function_name = config.function_name or started.function_name
    resource = lambda_resource(service_name=config.service_name, function_name=function_name,
                               function_version=config.function_version, region=config.region,
                               memory_mb=config.function_memory_mb, extra=config.resource_attributes)
    assembler = SpanAssembler(resource=resource, function_name=function_name or config.service_name,
                              ids=random_ids())
    timing = Timing(margin_s=config.shutdown_margin_ms / 1000,
                    runtime_done_timeout_s=(config.runtime_done_timeout_ms / 1000
                                            if config.runtime_done_timeout_ms else None))
    if started.subscribe_problem:
        log.get().error("subscribe_failed", error=started.subscribe_problem, mode="no_telemetry")
    elif started.listener is not None and not started.subscribed:
        log.get().warning("telemetry_unavailable", reason="the Telemetry API answered that it is not supported")
    async with make_session() as egress:
        headers = dict(config.traces.headers)  # the secret's headers are merged in, and refreshed, in place
        secret = config.headers_secret if config.traces.enabled else None
        subscribed = started.listener is not None and started.subscribed
        if not subscribed or (secret is not None and not await _fetch_headers(secret, egress, env, headers)):
            shutdown = await _pass_through(api, started)
        else:
            traces = replace(config.traces, headers=headers)
            exporter = OTLPExporter(AiohttpTransport(egress), traces, TRACES) if traces.enabled else None
            pipeline = Pipeline(assembler, Buffer(config.buffer_max_spans), exporter)
            flusher = Flusher(pipeline, FlushPolicy(config.flush, now=asyncio.get_running_loop().time()))
            assert started.listener is not None  # noqa: S101 -- for mypy: `subscribed` implies a listener
            async with serve(make_app(pipeline.accept, started.listener_path), started.listener), \
                    asyncio.TaskGroup() as tasks:
                flusher.attach(tasks.create_task(flusher.run(), name="background-flush"))
                refresh = None
                if secret is not None and secret.refresh_s:
                    refresh = tasks.create_task(_refresh_headers(secret, egress, env, headers, secret.refresh_s),
                                                name="refresh-headers")
                shutdown = await run_lifecycle(api, pipeline, flusher, timing=timing, telemetry=True)
                await flusher.stop_background()
                if refresh is not None:
                    refresh.cancel()
    log.get().info("shutdown", reason=shutdown.shutdown_reason)


async def _fetch_headers(secret: SecretSettings, session: aiohttp.ClientSession, env: Mapping[str, str],
                         headers: dict[str, str]) -> bool:
    """Merge the secret's headers into `headers`; False (reported once, with the AWS error code) if it failed."""
    from extension.secrets.resolve import resolve_headers  # only functions that keep a secret pay for it

    result = await resolve_headers(secret, session, env=env)
    if not result.ok:
        log.get().error("headers_secret_failed", mode="pass_through", **result.log_fields())
        return False
    headers.update(result.headers)
    log.get().info("headers_secret_read", **result.log_fields())
    return True


async def _refresh_headers(secret: SecretSettings, session: aiohttp.ClientSession, env: Mapping[str, str],
                           headers: dict[str, str], every_s: int) -> None:
    """Fetch again every `every_s` (time spent frozen counts): a rotated key reaches the exporter; on failure
    the last good headers stay."""
    from extension.secrets.resolve import resolve_headers

    while True:
        await asyncio.sleep(every_s)
        result = await resolve_headers(secret, session, env=env)
        if result.ok:
            headers.update(result.headers)
        else:
            log.get().warning("headers_secret_refresh_failed", kept="previous", **result.log_fields())


async def _pass_through(api: ExtensionsAPI, started: Started) -> Shutdown:
    """Stay registered and out of the way until SHUTDOWN, so the function never fails because of us.

    A subscription made by the fast start is still answered (and its batches dropped), so the platform
    sees a healthy consumer rather than failed deliveries.
    """
    if started.listener is None or not started.subscribed:
        if started.listener is not None:
            started.listener.close()
        return await _until_shutdown(api)
    async with serve(make_app(_drop, started.listener_path), started.listener):
        return await _until_shutdown(api)


async def _until_shutdown(api: ExtensionsAPI) -> Shutdown:
    while True:
        event = await api.next_event()
        if isinstance(event, Shutdown):
            return event


def _drop(raw: bytes) -> None:
    pass
