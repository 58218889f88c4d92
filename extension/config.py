"""Settings: `Config.from_env(env)` parses the environment strictly and reports every problem at once.

Standard OTEL_* names first, OTEL_LAMBDA_* for our own knobs, plus what Lambda provides. An empty
value counts as unset (OTel spec). `<SIGNAL>` is TRACES, LOGS or METRICS; a per-signal variable
wins over the general one.

| Variable                                  | Default               | Accepted values, meaning                       |
|-------------------------------------------|-----------------------|------------------------------------------------|
| AWS_LAMBDA_RUNTIME_API                    | required              | host:port of the Lambda APIs (Lambda sets it)  |
| AWS_LAMBDA_FUNCTION_NAME                  | unset                 | faas.name; the invocation span's name          |
| AWS_LAMBDA_FUNCTION_VERSION               | unset                 | faas.version                                   |
| AWS_LAMBDA_FUNCTION_MEMORY_SIZE           | unset                 | integer MB >= 1; faas.max_memory               |
| AWS_REGION                                | unset                 | cloud.region                                   |
| AWS_SAM_LOCAL                             | false                 | true, false, 1, 0: running under `sam local`   |
| OTEL_SERVICE_NAME                         | see below             | service.name                                   |
| OTEL_RESOURCE_ATTRIBUTES                  | none                  | k=v,k2=v2, percent-decoded; win over ours      |
| OTEL_EXPORTER_OTLP_ENDPOINT               | http://localhost:4318 | http(s) URL; /v1/<signal> is appended          |
| OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT      | base + /v1/<signal>   | http(s) URL, used as-is                        |
| OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL    | http/protobuf         | http/protobuf, http/json (not grpc)            |
| OTEL_EXPORTER_OTLP[_<SIGNAL>]_HEADERS     | none                  | k=v,k2=v2, percent-decoded; never logged       |
| OTEL_EXPORTER_OTLP[_<SIGNAL>]_COMPRESSION | gzip                  | gzip, none                                     |
| OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT     | 10000                 | integer milliseconds >= 1                      |
| OTEL_{TRACES,LOGS,METRICS}_EXPORTER       | otlp                  | otlp, none (the signal is not exported)        |
| OTEL_LOG_LEVEL                            | info                  | debug, info, warn, warning, error (our logs)   |
| OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE | cumulative    | cumulative, delta, lowmemory (= delta here)    |
| OTEL_METRIC_EXPORT_INTERVAL               | 60000                 | integer ms >= 1000: a metrics window at most   |
|                                           |                       | this often (and at SHUTDOWN)                   |
| OTEL_LAMBDA_BUFFER_MAX_SPANS              | 2048                  | integer >= 1; the oldest are dropped beyond    |
| OTEL_LAMBDA_BUFFER_MAX_LOG_RECORDS        | 4096                  | integer >= 1; the oldest are dropped beyond    |
| OTEL_LAMBDA_BUFFER_MAX_BYTES              | 4194304               | integer >= 1024: estimated OTLP bytes of the   |
|                                           |                       | buffered spans, and of the log records         |
| OTEL_LAMBDA_EXTENSION_LOGS                | false                 | true, false, 1, 0: extensions' lines as logs   |
| OTEL_LAMBDA_SHUTDOWN_MARGIN_MS            | 200                   | integer >= 0, kept free before a deadline      |
| OTEL_LAMBDA_RUNTIME_DONE_TIMEOUT_MS       | unset (deadline)      | integer >= 1: longest wait for runtimeDone    |
| OTEL_LAMBDA_LISTENER_PORT                 | 0 (any free)          | integer 0-65535, the telemetry listener's port |
| OTEL_LAMBDA_RECEIVER_PORT                 | 4318                  | integer 1-65535, or 0 / off: the in-function  |
|                                           |                       | OTLP/HTTP receiver's port on 127.0.0.1        |
| OTEL_LAMBDA_FLUSH                         | adaptive              | end, periodic,<ms>, continuous,<ms>, adaptive |
| OTEL_LAMBDA_HEADERS_*                     | unset                 | headers kept in a secret: secrets/settings.py |

service.name: OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else the function
name, else `unknown_service`. Per-signal headers are merged over the general ones, names lowercased.
Compression defaults to gzip although the spec says none: a function pays for the environment while
the extension uploads, and telemetry compresses several-fold. The timeout is in milliseconds as the
spec says (OTel Python reads seconds). Header values never appear in messages or reprs.

The extension never exports to its own receiver: an enabled signal's endpoint on a loopback host at the
receiver's port (the default endpoint, http://localhost:4318, while the receiver has its default port) is a
problem naming both variables, so the extension stays out of the way instead of sending its data in a circle.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from extension.errors import ConfigError
from extension.flush import FlushSetting
from extension.secrets.settings import SecretSettings

OTLPProtocol = Literal["http/protobuf", "http/json"]
Compression = Literal["gzip", "none"]
LogLevel = Literal["debug", "info", "warning", "error"]
Signal = Literal["traces", "logs", "metrics"]
Temporality = Literal["delta", "cumulative"]

DEFAULT_ENDPOINT: Final = "http://localhost:4318"
DEFAULT_RECEIVER_PORT: Final = 4318
# Names that reach this machine's loopback, where the receiver listens (sandbox.localdomain as the sandbox maps it).
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "sandbox.localdomain", "sandbox"})
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PROTOCOLS: Final[Mapping[str, OTLPProtocol]] = {"http/protobuf": "http/protobuf", "http/json": "http/json"}
_COMPRESSIONS: Final[Mapping[str, Compression]] = {"gzip": "gzip", "none": "none"}
_EXPORTERS: Final = {"otlp": True, "none": False}
# The spec's `lowmemory` is delta for counters and histograms, which is all the extension makes.
_TEMPORALITIES: Final[Mapping[str, Temporality]] = {
    "cumulative": "cumulative", "delta": "delta", "lowmemory": "delta",
}  # fmt: skip
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}
_LOG_LEVELS: Final[Mapping[str, LogLevel]] = {
    "debug": "debug", "info": "info", "warn": "warning", "warning": "warning", "error": "error",
}  # fmt: skip
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SignalExport:
    """Where and how one signal is exported; `enabled` is False when its exporter is `none`."""

    endpoint: str
    enabled: bool = True
    protocol: OTLPProtocol = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    own_headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Those of `headers` from this signal's own variable: they win over a headers secret too."""
    compression: Compression = "gzip"
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        headers = {name: "<redacted>" for name in self.headers}  # values may be API keys
        return (
            f"SignalExport(endpoint={self.endpoint!r}, enabled={self.enabled}, protocol={self.protocol!r}, "
            f"headers={headers}, compression={self.compression!r}, timeout_s={self.timeout_s})"
        )

    @classmethod
    def default(cls, signal: Signal) -> SignalExport:
        return cls(endpoint=f"{DEFAULT_ENDPOINT}/v1/{signal}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything the extension reads from its environment, parsed once."""

    runtime_api: str
    function_name: str | None = None
    function_version: str | None = None
    function_memory_mb: int | None = None
    region: str | None = None
    sam_local: bool = False
    service_name: str = "unknown_service"
    resource_attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    traces: SignalExport = field(default_factory=lambda: SignalExport.default("traces"))
    logs: SignalExport = field(default_factory=lambda: SignalExport.default("logs"))
    metrics: SignalExport = field(default_factory=lambda: SignalExport.default("metrics"))
    log_level: LogLevel = "info"
    metrics_temporality: Temporality = "cumulative"
    metric_export_interval_ms: int = 60_000
    buffer_max_spans: int = 2048
    buffer_max_log_records: int = 4096
    buffer_max_bytes: int = 4 * 1024 * 1024
    extension_logs: bool = False
    shutdown_margin_ms: int = 200
    runtime_done_timeout_ms: int | None = None
    listener_port: int = 0
    receiver_port: int | None = DEFAULT_RECEIVER_PORT
    """The in-function OTLP/HTTP receiver's port on 127.0.0.1; None: no receiver."""
    flush: FlushSetting = field(default_factory=FlushSetting)
    headers_secret: SecretSettings | None = None
    """Where OTLP headers come from when they are kept in Secrets Manager or SSM (extension.secrets.settings)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Parse `env` (os.environ or a plain dict); raises ConfigError listing every problem."""
        read = _Reader(env)
        runtime_api = read.text("AWS_LAMBDA_RUNTIME_API")
        if runtime_api is None:
            read.problem("AWS_LAMBDA_RUNTIME_API", "required, as host:port (Lambda sets it)")
        elif not re.fullmatch(r"[^\s:/]+:\d{1,5}", runtime_api):
            read.problem("AWS_LAMBDA_RUNTIME_API", f"{runtime_api!r} is not accepted; use host:port")
        function_name = read.text("AWS_LAMBDA_FUNCTION_NAME")
        resource_attributes = read.pairs("OTEL_RESOURCE_ATTRIBUTES", secret=False)
        service_name = (
            read.text("OTEL_SERVICE_NAME")
            or resource_attributes.get("service.name")
            or function_name
            or "unknown_service"
        )
        config = cls(
            runtime_api=runtime_api or "",
            function_name=function_name,
            function_version=read.text("AWS_LAMBDA_FUNCTION_VERSION"),
            function_memory_mb=read.integer("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None, minimum=1),
            region=read.text("AWS_REGION"),
            sam_local=read.choice("AWS_SAM_LOCAL", _BOOLEANS, False),
            service_name=service_name,
            resource_attributes=MappingProxyType(resource_attributes),
            traces=_signal(read, "traces"),
            logs=_signal(read, "logs"),
            metrics=_signal(read, "metrics"),
            log_level=read.choice("OTEL_LOG_LEVEL", _LOG_LEVELS, "info"),
            metrics_temporality=read.choice("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", _TEMPORALITIES,
                                            "cumulative"),
            metric_export_interval_ms=read.integer("OTEL_METRIC_EXPORT_INTERVAL", 60_000, minimum=1000),
            buffer_max_spans=read.integer("OTEL_LAMBDA_BUFFER_MAX_SPANS", 2048, minimum=1),
            buffer_max_log_records=read.integer("OTEL_LAMBDA_BUFFER_MAX_LOG_RECORDS", 4096, minimum=1),
            buffer_max_bytes=read.integer("OTEL_LAMBDA_BUFFER_MAX_BYTES", 4 * 1024 * 1024, minimum=1024),
            extension_logs=read.choice("OTEL_LAMBDA_EXTENSION_LOGS", _BOOLEANS, False),
            shutdown_margin_ms=read.integer("OTEL_LAMBDA_SHUTDOWN_MARGIN_MS", 200, minimum=0),
            runtime_done_timeout_ms=read.integer("OTEL_LAMBDA_RUNTIME_DONE_TIMEOUT_MS", None, minimum=1),
            listener_port=read.integer("OTEL_LAMBDA_LISTENER_PORT", 0, minimum=0, maximum=65535),
            receiver_port=_receiver_port(read),
            flush=_flush_setting(read),
            headers_secret=_headers_secret(env, read),
        )
        _check_receiver(read, config)
        if read.problems:
            raise ConfigError(read.problems)
        return config


def _receiver_port(read: _Reader) -> int | None:
    if (read.text("OTEL_LAMBDA_RECEIVER_PORT") or "").lower() == "off":
        return None
    port = read.integer("OTEL_LAMBDA_RECEIVER_PORT", DEFAULT_RECEIVER_PORT, minimum=0, maximum=65535)
    return port or None


def _check_receiver(read: _Reader, config: Config) -> None:
    """The receiver must not take the listener's port, and no signal may be exported to it."""
    port = config.receiver_port
    if port is None:
        return
    if port == config.listener_port:
        read.problem("OTEL_LAMBDA_RECEIVER_PORT", f"{port} is also OTEL_LAMBDA_LISTENER_PORT; give them two ports")
    for name, signal in (("TRACES", config.traces), ("LOGS", config.logs), ("METRICS", config.metrics)):
        if signal.enabled and _is_receiver(signal.endpoint, port):
            variable = (f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT" if read.text(f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT")
                        else "OTEL_EXPORTER_OTLP_ENDPOINT")
            shown = read.text(variable) or f"unset, i.e. {DEFAULT_ENDPOINT}"
            read.problem(variable, f"{shown} is this extension's own receiver (OTEL_LAMBDA_RECEIVER_PORT={port}); "
                                   "set your collector's URL, or move the receiver (OTEL_LAMBDA_RECEIVER_PORT=<port>) "
                                   "or turn it off (OTEL_LAMBDA_RECEIVER_PORT=off)")


def _is_receiver(endpoint: str, port: int) -> bool:
    parts = urlsplit(endpoint)
    try:
        endpoint_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is no number: reported as a bad URL elsewhere, if at all
        return False
    host = (parts.hostname or "").lower()
    if endpoint_port != port:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _headers_secret(env: Mapping[str, str], read: _Reader) -> SecretSettings | None:
    try:
        return SecretSettings.from_env(env)
    except ConfigError as error:
        read.problems.extend(error.problems)
        return None


def _flush_setting(read: _Reader) -> FlushSetting:
    text = read.text("OTEL_LAMBDA_FLUSH")
    if text is None:
        return FlushSetting()
    try:
        return FlushSetting.parse(text)
    except ValueError as problem:
        read.problem("OTEL_LAMBDA_FLUSH", str(problem))
        return FlushSetting()


def _signal(read: _Reader, signal: Signal) -> SignalExport:
    upper = signal.upper()

    def name(setting: str) -> str:
        specific = f"OTEL_EXPORTER_OTLP_{upper}_{setting}"
        return specific if read.text(specific) is not None else f"OTEL_EXPORTER_OTLP_{setting}"

    if read.text(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT") is not None:
        endpoint = read.url(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "")
    else:
        endpoint = read.url("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/") + f"/v1/{signal}"
    if (read.text(name("PROTOCOL")) or "").lower() == "grpc":
        read.problem(name("PROTOCOL"), "'grpc' is not supported; use one of: http/protobuf, http/json")
        protocol: OTLPProtocol = "http/protobuf"
    else:
        protocol = read.choice(name("PROTOCOL"), _PROTOCOLS, "http/protobuf")
    headers = read.pairs("OTEL_EXPORTER_OTLP_HEADERS", secret=True)
    own_headers = read.pairs(f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", secret=True)
    headers.update(own_headers)
    return SignalExport(
        endpoint=endpoint,
        enabled=read.choice(f"OTEL_{upper}_EXPORTER", _EXPORTERS, True),
        protocol=protocol,
        headers=MappingProxyType(headers),
        own_headers=MappingProxyType(own_headers),
        compression=read.choice(name("COMPRESSION"), _COMPRESSIONS, "gzip"),
        timeout_s=read.integer(name("TIMEOUT"), 10_000, minimum=1) / 1000,
    )


class _Reader:
    """Typed reads of one environment that collect problems instead of raising on the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def problem(self, name: str, message: str) -> None:
        line = f"{name}: {message}"
        if line not in self.problems:  # a general variable is read once per signal; report it once
            self.problems.append(line)

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def choice(self, name: str, accepted: Mapping[str, _T], default: _T) -> _T:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() not in accepted:
            self.problem(name, f"{value!r} is not accepted; use one of: {', '.join(accepted)}")
            return default
        return accepted[value.lower()]

    def integer(self, name: str, default: _T, *, minimum: int, maximum: int | None = None) -> int | _T:
        value = self.text(name)
        if value is None:
            return default
        bounds = f"an integer >= {minimum}" if maximum is None else f"an integer {minimum}-{maximum}"
        number = int(value) if re.fullmatch(r"[+-]?\d+", value) else None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            self.problem(name, f"{value!r} is not accepted; use {bounds}")
            return default
        return number

    def url(self, name: str, default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.problem(name, "is not accepted; use an http:// or https:// URL with a host")
        return value

    def pairs(self, name: str, *, secret: bool) -> dict[str, str]:
        """A `k=v,k2=v2` list, percent-decoded; with `secret`, messages never quote values."""
        result: dict[str, str] = {}
        for index, entry in enumerate((self.text(name) or "").split(","), start=1):
            if not entry.strip():
                continue
            key, sep, value = entry.partition("=")
            try:
                key, value = unquote(key.strip(), errors="strict"), unquote(value.strip(), errors="strict")
            except UnicodeDecodeError:
                self.problem(name, f"entry {index} is not valid percent-encoded UTF-8")
                continue
            if not sep or not key:
                self.problem(name, f"entry {index} is not key=value")
            elif secret and not _HEADER_NAME.fullmatch(key):
                self.problem(name, f"entry {index} does not have a valid header name")
            elif secret and re.search(r"[\r\n\0]", value):
                self.problem(name, f"entry {index} ({key}) has a value with control characters")
            else:
                result[key.lower() if secret else key] = value
        return result
