"""The composition root: after the fast start, build the parts, serve the listener, run the lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import urlsplit

from extension import __version__, listener, log
from extension.bootstrap import Started
from extension.buffer import Buffer
from extension.config import Config, SignalExport
from extension.convert.health import ExtensionHealth
from extension.convert.logs import LogAssembler
from extension.convert.metrics import PlatformMetrics
from extension.convert.resource import lambda_resource
from extension.convert.spans import SpanAssembler
from extension.errors import ConfigError, LambdaAPIError
from extension.events import Shutdown
from extension.export.breaker import BreakerState, CircuitBreaker
from extension.export.otlp import LOGS, METRICS, TRACES, Codec, LogItem, OTLPExporter, SpanItem
from extension.export.resilient import ResilientExporter
from extension.export.size import estimate_log_bytes, estimate_span_bytes
from extension.export.transport import HTTPTransport, Transport
from extension.flush import FlushPolicy
from extension.flusher import Flusher
from extension.http.client import HTTPClient
from extension.lambda_api import ExtensionsAPI
from extension.lifecycle import Timing, run_lifecycle
from extension.metering import Metering
from extension.outbox import Outbox
from extension.pipeline import MAX_LOG_RECORDS_PER_EXPORT, LogRecords, Pipeline
from extension.receiver import receiving
from extension.secrets.settings import SecretSettings

T = TypeVar("T")


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
    # Its own client for the Extensions API: `next` holds its connection for as long as the sandbox is frozen.
    async with HTTPClient() as runtime_client:
        api = ExtensionsAPI(runtime_client, launch.runtime_api, started.extension_id,
                            pending_next=started.pending_next)
        log.get().info("registered", version=__version__)
        if launch.config is None:
            log.get().error("config_invalid", problems=launch.problem.problems if launch.problem else [],
                            mode="pass_through")
            await _pass_through(api, started)
            return 0
        try:
            await _run_configured(api, launch.config, started, launch.env, launch.name)
        except Exception as error:  # a bug of ours: say so to Lambda, as documented, then leave
            log.get().exception("extension_failed")
            report = api.exit_error if api.initialized else api.init_error
            with contextlib.suppress(LambdaAPIError):
                await report("Extension.UnknownReason", type(error).__name__)
            return 1
    return 0


async def _run_configured(api: ExtensionsAPI, config: Config, started: Started, env: Mapping[str, str],
                         name: str) -> None:
    function_name = config.function_name or started.function_name
    resource = lambda_resource(service_name=config.service_name, function_name=function_name,
                               function_version=config.function_version, region=config.region,
                               memory_mb=config.function_memory_mb, extra=config.resource_attributes)
    assembler = SpanAssembler(resource=resource, function_name=function_name or config.service_name,
                              ids=RandomIds())
    timing = Timing(margin_s=config.shutdown_margin_ms / 1000,
                    runtime_done_timeout_s=(config.runtime_done_timeout_ms / 1000
                                            if config.runtime_done_timeout_ms else None))
    if started.subscribe_problem:
        log.get().error("subscribe_failed", error=started.subscribe_problem, mode="no_telemetry")
    elif started.listener is not None and not started.subscribed:
        log.get().warning("telemetry_unavailable", reason="the Telemetry API answered that it is not supported")
    async with HTTPClient() as egress:
        # The secret stands in for OTEL_EXPORTER_OTLP_HEADERS, so it goes to every signal's endpoint; the
        # exporters hold these dicts, so a refresh reaches them in place.
        headers = _SignalHeaders(config)
        secret = config.headers_secret if any(signal.enabled for signal in headers.signals.values()) else None
        subscribed = started.listener is not None and started.subscribed
        if not subscribed or (secret is not None and not await _fetch_headers(secret, egress, env, headers)):
            shutdown = await _pass_through(api, started)
        else:
            out = _Egress(HTTPTransport(egress))
            traces = headers.signals["traces"]
            exporter = out.exporter(traces, TRACES) if traces.enabled else None
            buffer: Buffer[SpanItem] = Buffer(config.buffer_max_spans, max_bytes=config.buffer_max_bytes,
                                              size_of=estimate_span_bytes)
            pipeline = Pipeline(assembler, buffer, exporter,
                                logs=_log_records(config, headers.signals["logs"], out, assembler, name),
                                metering=_metering(config, headers.signals["metrics"], out, assembler),
                                breaker_state=out.worst_breaker_state)
            flusher = Flusher(pipeline, FlushPolicy(config.flush, now=asyncio.get_running_loop().time()))
            pipeline.on_backlog = flusher.kick
            assert started.listener is not None  # noqa: S101 -- for mypy: `subscribed` implies a listener
            async with listener.listening(pipeline.accept, started.listener_path, started.listener), \
                    receiving(config.receiver_port, pipeline.forward, prebound=started.receiver), \
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


class RandomIds:
    """Random, non-zero trace and span ids, as the W3C trace context asks (it fits builders.IdGenerator)."""

    def __init__(self) -> None:
        # Ids need to be unique, not unpredictable: a generator seeded from the OS at start is enough.
        self._random = random.Random()  # noqa: S311 -- ids, not secrets

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1


class _Egress:
    """Every signal's exporter, with retries, behind one circuit breaker per collector (scheme, host and port):
    once the collector hangs or is down, the other signals' requests in the same flush are spared the wait."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def exporter(self, signal: SignalExport, codec: Codec[T]) -> ResilientExporter[T]:
        parts = urlsplit(signal.endpoint)
        breaker = self._breakers.setdefault((parts.scheme, parts.netloc), CircuitBreaker())
        return ResilientExporter(OTLPExporter(self._transport, signal, codec), breaker=breaker)

    def worst_breaker_state(self) -> BreakerState:
        """For the health metrics: open if any collector's circuit is, else half open if any is probing."""
        states = {breaker.state for breaker in self._breakers.values()}
        for state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            if state in states:
                return state
        return BreakerState.CLOSED


def _log_records(config: Config, logs: SignalExport, out: _Egress, assembler: SpanAssembler,
                 own_name: str) -> LogRecords | None:
    """The function's log lines in its invocations' traces, unless their exporter is `none`."""
    if not logs.enabled:
        return None
    buffer: Buffer[LogItem] = Buffer(config.buffer_max_log_records, max_bytes=config.buffer_max_bytes,
                                     size_of=estimate_log_bytes)
    return LogRecords(assembler=LogAssembler(resource=assembler.resource, ids_of=assembler.ids_of,
                                             own_name=own_name),
                      outbox=Outbox(buffer, out.exporter(logs, LOGS), max_per_export=MAX_LOG_RECORDS_PER_EXPORT))


def _metering(config: Config, metrics: SignalExport, out: _Egress, assembler: SpanAssembler) -> Metering | None:
    """Platform and health metrics, unless their exporter is `none`."""
    if not metrics.enabled:
        return None
    exporter = out.exporter(metrics, METRICS)
    return Metering(exporter, platform=PlatformMetrics(config.metrics_temporality),
                    health=ExtensionHealth(config.metrics_temporality), resource=lambda: assembler.resource,
                    interval_s=config.metric_export_interval_ms / 1000, max_bytes=config.buffer_max_bytes)


class _SignalHeaders:
    """Each signal's settings with headers the secret's can be merged over: the dicts their exporters hold."""

    def __init__(self, config: Config) -> None:
        configured = {"traces": config.traces, "logs": config.logs, "metrics": config.metrics}
        self._configured = {name: dict(signal.headers) for name, signal in configured.items()}
        self._own = {name: dict(signal.own_headers) for name, signal in configured.items()}
        self._current = {name: dict(headers) for name, headers in self._configured.items()}
        self.signals = {name: replace(signal, headers=self._current[name]) for name, signal in configured.items()}

    def apply(self, secret_headers: Mapping[str, str]) -> None:
        """Over OTEL_EXPORTER_OTLP_HEADERS, under a signal's own OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS (a signal
        sent to another backend keeps its key). Replace, not add: a header that a rotated secret no longer holds
        must stop being sent."""
        for name, current in self._current.items():
            current.clear()
            current.update({**self._configured[name], **secret_headers, **self._own[name]})


async def _fetch_headers(secret: SecretSettings, session: HTTPClient, env: Mapping[str, str],
                         headers: _SignalHeaders) -> bool:
    """Merge the secret's headers into every signal's; False (reported once, with the AWS error code) if it
    failed."""
    from extension.secrets.resolve import resolve_headers  # only functions that keep a secret pay for it

    result = await resolve_headers(secret, session, env=env)
    if not result.ok:
        log.get().error("headers_secret_failed", mode="pass_through", **result.log_fields())
        return False
    headers.apply(result.headers)
    log.get().info("headers_secret_read", **result.log_fields())
    return True


async def _refresh_headers(secret: SecretSettings, session: HTTPClient, env: Mapping[str, str],
                           headers: _SignalHeaders, every_s: int) -> None:
    """Fetch again every `every_s` (time spent frozen counts): a rotated key reaches the exporters; on failure
    the last good headers stay, said once until a refresh succeeds again."""
    from extension.secrets.resolve import resolve_headers

    failing = False
    while True:
        await asyncio.sleep(every_s)
        result = await resolve_headers(secret, session, env=env)
        if result.ok:
            headers.apply(result.headers)
            if failing:
                log.get().info("headers_secret_refreshed", **result.log_fields())
            failing = False
        elif not failing:
            failing = True
            log.get().warning("headers_secret_refresh_failed", kept="previous", **result.log_fields())


async def _pass_through(api: ExtensionsAPI, started: Started) -> Shutdown:
    """Stay registered and out of the way until SHUTDOWN, so the function never fails because of us.

    A subscription made by the fast start is still answered (and its batches dropped), so the platform
    sees a healthy consumer rather than failed deliveries.
    """
    if started.receiver is not None:
        started.receiver.close()  # nothing forwards what the function would send: let its exports fail fast
    if started.listener is None or not started.subscribed:
        if started.listener is not None:
            started.listener.close()
        return await _until_shutdown(api)
    async with listener.listening(_drop, started.listener_path, started.listener):
        return await _until_shutdown(api)


async def _until_shutdown(api: ExtensionsAPI) -> Shutdown:
    while True:
        event = await api.next_event()
        if isinstance(event, Shutdown):
            return event


def _drop(raw: bytes) -> None:
    pass
