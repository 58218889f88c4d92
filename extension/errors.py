"""The extension's exception tree: broken invariants only; expected outcomes are values.

    ExtensionError                 base of everything raised on purpose
    ├── ConfigError                settings could not be parsed; lists every problem at once
    ├── LambdaAPIError             the Extensions/Telemetry API answered with an unexpected status
    ├── ProtocolError              a lifecycle event (event/next) we cannot understand; also a ValueError
    ├── HTTPMessageError           an HTTP/1.1 message we cannot read or will not write; also a ValueError
    ├── BadOTLPBody                an OTLP/HTTP request body we cannot decode; also a ValueError
    │   └── OTLPBodyTooLarge       it inflates past the size limit
    └── ExportError                an OTLP export could not be carried out
        └── TransportError         the connection failed (third-party errors are mapped to this once)

Imports: stdlib only.
"""

from __future__ import annotations

from collections.abc import Sequence


class ExtensionError(Exception):
    """Base class for every exception the extension raises on purpose."""


class ConfigError(ExtensionError):
    """The environment holds settings we cannot accept; `problems` has one line per setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class LambdaAPIError(ExtensionError):
    """The Lambda Extensions or Telemetry API answered with a status we did not expect."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"Lambda API answered {status}: {body[:200]}")


class ProtocolError(ExtensionError, ValueError):
    """A lifecycle event from event/next is not what the Extensions API promises."""


class HTTPMessageError(ExtensionError, ValueError):
    """An HTTP/1.1 message that breaks the protocol (a bad head, framing, or a body past its limit)."""


class BadOTLPBody(ExtensionError, ValueError):
    """An OTLP/HTTP request body that cannot be decoded as the export request it claims to be."""


class OTLPBodyTooLarge(BadOTLPBody):
    """An OTLP/HTTP request body that inflates past the size limit."""


class ExportError(ExtensionError):
    """An OTLP export could not be carried out."""


class TransportError(ExportError):
    """The connection to the OTLP endpoint failed (refused, reset, timed out)."""
