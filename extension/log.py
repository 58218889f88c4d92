"""The extension's own log: one JSON line on stdout per flush or per problem, and never an exception for it.

Our own instead of structlog, whose imports cost the cold start about 12 ms beside the extension's other modules
(60 ms on their own): what we need is a level check, a timestamp and orjson. Every line is `event`, `level`,
`timestamp` (ISO 8601 UTC), `extension` once configured, then the fields, the key names structlog wrote. Only the
standard library modules that orjson loads anyway, and no `typing` at run time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import orjson

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE

Write = Callable[[bytes], None]


def _stdout(line: bytes) -> None:
    # Looked up at each line, not kept, so that whatever stands in for stdout (a test's capture) gets it. Flushed
    # at once: stdout is a block-buffered pipe here, and an unflushed line would wait across freezes for the buffer
    # to fill, or die with the process.
    stream = sys.stdout
    stream.write(line.decode())
    stream.flush()


class _State:
    """What configure() set; one instance, read by every logger at each call, so loggers may be got early."""

    __slots__ = ("extension", "lost", "threshold", "write")

    def __init__(self) -> None:
        self.threshold = INFO
        self.extension = ""
        self.write: Write = _stdout
        self.lost = 0  # lines that could not be rendered or written


_state = _State()


def configure(level: str = "info", *, extension_name: str = "") -> None:
    """`level` is one of LEVELS (an unknown one means info); `extension_name`, if given, goes on every line."""
    _state.threshold = LEVELS.get(level, INFO)
    _state.extension = extension_name


def lost() -> int:
    """How many lines could not be written (stdout closed or broken, a value that broke the renderer)."""
    return _state.lost


class Logger:
    """debug/info/warning/error/exception(event, **fields): one line each when its level is on, else nothing."""

    __slots__ = ("_bound",)

    def __init__(self, bound: dict[str, object]) -> None:
        self._bound = bound

    def bind(self, **fields: object) -> Logger:
        """A logger that adds `fields` to every line, after the ones already bound."""
        return Logger({**self._bound, **fields})

    # The level is checked before anything is built: a call below it costs the call and one comparison.
    def debug(self, event: str, **fields: object) -> None:
        if _state.threshold <= DEBUG:
            _emit("debug", event, self._bound, fields)

    def info(self, event: str, **fields: object) -> None:
        if _state.threshold <= INFO:
            _emit("info", event, self._bound, fields)

    def warning(self, event: str, **fields: object) -> None:
        if _state.threshold <= WARNING:
            _emit("warning", event, self._bound, fields)

    def error(self, event: str, **fields: object) -> None:
        if _state.threshold <= ERROR:
            _emit("error", event, self._bound, fields)

    def exception(self, event: str, **fields: object) -> None:
        """At error level, from an `except` block: the exception being handled, its traceback under `exception`."""
        if _state.threshold <= ERROR:
            _emit("error", event, self._bound, fields, sys.exc_info()[1])


_ROOT = Logger({})


def get() -> Logger:
    return _ROOT


def _emit(level: str, event: str, bound: dict[str, object], fields: dict[str, object],
          error: BaseException | None = None) -> None:
    # Never raises: the extension must not fail, nor a flush stop half way, because a line could not be written.
    try:
        _state.write(render(level, event, {**bound, **fields}, time.time_ns(), _state.extension, error))
    except Exception:
        _state.lost += 1


def render(level: str, event: str, fields: dict[str, object], now_ns: int, extension: str = "",
           error: BaseException | None = None) -> bytes:
    """One line, newline included. A field named like one of ours does not replace it: those keys are the
    contract that readers of the log (and the own-line check in convert.logs) rely on."""
    ours: dict[str, object] = {"event": event, "level": level, "timestamp": timestamp(now_ns)}
    if extension:
        ours["extension"] = extension
    if error is not None:
        ours["exception"] = _traceback(error)
    line = {**ours, **fields, **ours}  # ours first in order, and ours where a field has the same name
    try:
        return orjson.dumps(line, default=_text, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits, a cycle, nesting too deep
        return orjson.dumps({key: _taken_or_text(value) for key, value in line.items()}, option=_OPTIONS)


def timestamp(now_ns: int) -> str:
    """ISO 8601 in UTC, as structlog's TimeStamper(fmt="iso", utc=True) wrote it, but always with six digits of
    microseconds (isoformat() leaves them out when they are zero)."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{nanos // 1000:06d}Z"


def _taken_or_text(value: object) -> object:
    """The value if orjson takes it, else its text: one bad field does not turn the others into text."""
    try:
        orjson.dumps(value, default=_text, option=_OPTIONS)
    except TypeError:
        return _text(value)
    return value


def _text(value: object) -> str:
    """orjson's fallback for what it cannot serialise (a set, bytes, an exception): the value as text."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _traceback(error: BaseException) -> str:
    import traceback  # here, not at the top: only the lines about a failure need it

    return "".join(traceback.format_exception(error)).rstrip("\n")


@contextlib.contextmanager
def capture(level: str = "debug") -> Iterator[list[dict[str, object]]]:
    """For tests: the lines logged inside the block, each decoded from the bytes that would have been written."""
    records: list[dict[str, object]] = []
    saved = _state.threshold, _state.write
    _state.threshold = LEVELS[level]
    _state.write = lambda line: records.append(orjson.loads(line))
    try:
        yield records
    finally:
        _state.threshold, _state.write = saved
