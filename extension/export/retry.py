"""The retry schedule of an export: which outcomes may be retried, full-jitter backoff, and Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# Throttled, bad gateway, unavailable, gateway timeout: the OTLP/HTTP spec's retryable answers. Connection
# errors (no answer at all) are retryable too; see ExportResult.retryable.
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
# A Retry-After beyond this is not believed: an endpoint (or a proxy in front of it) asking for an hour
# would otherwise silence telemetry while the bounded buffer drops it.
MAX_RETRY_AFTER_S: Final = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard one export tries before it hands its spans back to the buffer.

    Few inline retries on purpose: every second spent retrying inside a flush is a second the environment
    stays awake (billed, and with `end` delaying the next invocation). A batch that still fails goes back
    to the front of the buffer and leaves with the next flush, which is the long-term retry.
    """

    max_retries: int = 2  # requests after the first, within one export
    base_s: float = 0.1  # the first retry waits up to this, the next up to twice this, ...
    cap_s: float = 1.0  # ... but never more than this
    min_attempt_s: float = 0.05  # a retry that could not start this long before the deadline is not made
    max_wait_s: float = 0.25
    """The longest wait before an inline retry. A collector's longer Retry-After (a whole second, at least, in
    delta-seconds) is left to a later flush: waiting it out inline would bill the function for it under the
    `end` strategy; the data waits in the buffer instead, and no request goes out before the collector asked."""


def is_retryable_status(status: int | None) -> bool:
    """Whether a request answered with `status` (None: no answer came back) may succeed when sent again."""
    return status is None or status in RETRYABLE_STATUS


def backoff(attempt: int, *, base_s: float, cap_s: float, random: Callable[[], float]) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first): full jitter, uniform in
    [0, min(cap_s, base_s * 2**attempt)). Jitter spreads the retries of many environments that failed
    together (a collector restart) instead of sending them back in lockstep. `random()` is in [0, 1)."""
    ceiling = min(cap_s, base_s * float(2 ** min(max(attempt, 0), 32)))  # bounded: 2.0**1100 overflows
    return max(0.0, ceiling * random())


def retry_after_s(header_value: str | None, *, now_wall: float) -> float | None:
    """The wait a Retry-After header asks for, in seconds from `now_wall` (Unix seconds), capped at
    MAX_RETRY_AFTER_S; None when there is no header or it is neither delta-seconds nor an HTTP-date."""
    if header_value is None:
        return None
    text = header_value.strip()
    if text.isascii() and text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER_S)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # asctime's form carries no zone, yet an HTTP-date is always GMT
        moment = moment.replace(tzinfo=dt.UTC)
    return min(max(0.0, moment.timestamp() - now_wall), MAX_RETRY_AFTER_S)
