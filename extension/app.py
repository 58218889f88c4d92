"""The composition root: register, build the parts, listen, subscribe, run the lifecycle loop."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp

from extension import __version__, log
from extension.buffer import Buffer
from extension.config import Config
from extension.convert._sdk import random_ids
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.errors import ConfigError, LambdaAPIError
from extension.events import Shutdown
from extension.export.otlp import OTLPSpanExporter
from extension.export.transport import AiohttpTransport, make_session
from extension.flush import FlushPolicy
from extension.flusher import Flusher
from extension.lambda_api import ExtensionsAPI
from extension.lifecycle import Timing, run_lifecycle
from extension.listener import make_app, secret_path, serve
from extension.pipeline import Pipeline


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """What the command line hands over: the registered name, the runtime API, and the parsed settings."""

    name: str
    runtime_api: str
    config: Config | None
    problem: ConfigError | None = None


async def run(launch: Launch) -> int:
    # The Extensions API session has no timeout at all: next may block for as long as the sandbox is frozen.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as runtime_session:
        api = ExtensionsAPI(runtime_session, launch.runtime_api)
        try:
            await api.register(launch.name)
        except LambdaAPIError as error:
            log.get().error("register_failed", status=error.status, error=str(error))
            return 1
        log.get().info("registered", version=__version__)
        if launch.config is None:
            log.get().error("config_invalid", problems=launch.problem.problems if launch.problem else [],
                            mode="pass_through")
            await _pass_through(api)
            return 0
        try:
            await _run_configured(api, launch.config)
        except Exception as error:  # a bug of ours: say so to Lambda, as documented, then leave
            log.get().exception("extension_failed")
            report = api.exit_error if api.initialized else api.init_error
            with contextlib.suppress(LambdaAPIError):
                await report("Extension.UnknownReason", type(error).__name__)
            return 1
    return 0


async def _run_configured(api: ExtensionsAPI, config: Config) -> None:
    resource = lambda_resource(service_name=config.service_name, function_name=config.function_name,
                               function_version=config.function_version, region=config.region,
                               memory_mb=config.function_memory_mb, extra=config.resource_attributes)
    assembler = SpanAssembler(resource=resource, function_name=config.function_name or config.service_name,
                              ids=random_ids())
    async with make_session() as egress:
        exporter = OTLPSpanExporter(AiohttpTransport(egress), config.traces) if config.traces.enabled else None
        pipeline = Pipeline(assembler, Buffer(config.buffer_max_spans), exporter)
        path = secret_path()
        host = "0.0.0.0" if config.sam_local else "sandbox.localdomain"
        timing = Timing(margin_s=config.shutdown_margin_ms / 1000,
                        runtime_done_timeout_s=(config.runtime_done_timeout_ms / 1000
                                                if config.runtime_done_timeout_ms else None))
        flusher = Flusher(pipeline, FlushPolicy(config.flush, now=asyncio.get_running_loop().time()))
        try:
            listening = serve(make_app(pipeline.accept, path), host=host, port=config.listener_port)
            async with listening as port, asyncio.TaskGroup() as tasks:
                subscribed = await _subscribe(api, f"http://sandbox.localdomain:{port}{path}")
                flusher.attach(tasks.create_task(flusher.run(), name="background-flush"))
                shutdown = await run_lifecycle(api, pipeline, flusher, timing=timing, telemetry=subscribed)
                await flusher.stop_background()
        except OSError as error:  # the listener could not bind: keep the function running without us
            log.get().error("listener_failed", error=str(error), mode="pass_through")
            shutdown = await _pass_through(api)
    log.get().info("shutdown", reason=shutdown.shutdown_reason)


async def _subscribe(api: ExtensionsAPI, uri: str) -> bool:
    try:
        subscribed = await api.subscribe(uri, ["platform"])
    except LambdaAPIError as error:
        log.get().error("subscribe_failed", status=error.status, error=str(error), mode="pass_through")
        return False
    if not subscribed:
        log.get().warning("telemetry_unavailable", reason="the Telemetry API answered that it is not supported")
    return subscribed


async def _pass_through(api: ExtensionsAPI) -> Shutdown:
    """Stay registered and out of the way until SHUTDOWN, so the function never fails because of us."""
    while True:
        event = await api.next_event()
        if isinstance(event, Shutdown):
            return event
