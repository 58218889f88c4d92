"""The outcome of one fetch, and the headers kept between fetches: when to fetch again, what to report. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from extension.secrets.protocol import Failure
from extension.secrets.settings import Service


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SecretResult:
    """The headers a secret stands for, or why there are none; header values never appear in a repr or log."""

    service: Service
    resource: str  # the ARN or parameter name, as configured
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    failure: Failure | None = None
    attempts: int = 0  # requests to AWS, retries included
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None

    def __repr__(self) -> str:
        outcome = f"headers={sorted(self.headers)}" if self.failure is None else f"failure={self.failure!r}"
        return (f"SecretResult(service={self.service!r}, resource={self.resource!r}, {outcome}, "
                f"attempts={self.attempts}, duration_s={self.duration_s:.3f})")

    def log_fields(self) -> dict[str, object]:
        """Keys for the one log line about this fetch: the resource and AWS's error code, never a value."""
        fields: dict[str, object] = {"service": self.service, "resource": self.resource,
                                     "attempts": self.attempts, "duration_ms": round(self.duration_s * 1000, 1)}
        if self.failure is None:
            fields["headers"] = sorted(self.headers)  # the names tell which headers came from the secret
        else:
            fields.update(error_code=self.failure.code, error=self.failure.message, status=self.failure.status)
        return fields


class HeaderCache:
    """The last good headers for the sandbox's lifetime, fetched again every `refresh_s` if set.

    The shell asks `begin(now)` before fetching (so fetches never overlap), and hands every result to
    `record`, which keeps the last good headers across failures and says which results are worth a log line.
    """

    def __init__(self, *, refresh_s: float | None) -> None:
        self._refresh_s = refresh_s
        self._headers: Mapping[str, str] = MappingProxyType({})
        self._last_fetch: float | None = None
        self._running = False
        self._reported: str | None = None  # the failure code last reported; "" once a fetch succeeded

    def __repr__(self) -> str:
        return f"HeaderCache(headers={sorted(self._headers)}, refresh_s={self._refresh_s})"

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers of the last successful fetch; empty until one succeeds."""
        return self._headers

    @property
    def ready(self) -> bool:
        """A fetch has succeeded: exporting now carries the secret's headers."""
        return self._reported == ""

    def due(self, now: float) -> bool:
        """A fetch should start: none has run yet, or the refresh interval has passed, and none is running."""
        if self._running:
            return False
        if self._last_fetch is None:
            return True
        if self._refresh_s is None:
            return False
        # A clock that went back (a SnapStart restore may do that) says nothing about age: fetch again.
        return now < self._last_fetch or now - self._last_fetch >= self._refresh_s

    def begin(self, now: float) -> bool:
        """True, and a fetch is marked running, when one is due; False when the caller should not fetch."""
        if not self.due(now):
            return False
        self._running = True
        return True

    def record(self, result: SecretResult, now: float) -> bool:
        """Keep a good result's headers (a failure keeps the last good ones); True when the result deserves a
        log line: the first failure, a failure with another code, the first success, and a recovery."""
        self._running = False
        self._last_fetch = now
        code = "" if result.failure is None else result.failure.code
        if result.failure is None:
            self._headers = MappingProxyType(dict(result.headers))
        report = code != self._reported
        self._reported = code
        return report

    def merged(self, configured: Mapping[str, str]) -> dict[str, str]:
        """`configured` (OTEL_EXPORTER_OTLP_*HEADERS) with the secret's headers over them."""
        return {**configured, **self._headers}
