"""Command line: the only place that reads os.environ, calls asyncio.run and picks the exit code.

Start-up order matters for the function's cold start: the fast start (standard library only) registers,
subscribes and sends the first `next` before asyncio and the rest of the extension are imported.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from extension import bootstrap


def main(argv: Sequence[str] | None = None) -> int:
    """`argv[0]`, if given, is the registered name: the launcher passes its own file name."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else os.path.basename(sys.argv[0])
    env = os.environ
    runtime_api = env.get("AWS_LAMBDA_RUNTIME_API", "")
    began = time.perf_counter()
    types, host, port = bootstrap.listen_settings(env)
    try:
        started: bootstrap.Started | None = bootstrap.start(runtime_api, name, types=types, host=host, port=port,
                                                            receiver_port=bootstrap.receiver_port(env))
        failure = None
    except bootstrap.BootstrapError as error:
        started, failure = None, error
    next_sent = time.perf_counter()
    # Everything below may take its time: Lambda already counts this extension as ready.
    import asyncio
    import contextlib

    from extension import log
    from extension.app import Launch, run
    from extension.config import Config
    from extension.errors import ConfigError

    config: Config | None = None
    problem: ConfigError | None = None
    try:
        config = Config.from_env(env)
    except ConfigError as error:
        problem = error
    log.configure(config.log_level if config else "info", extension_name=name)
    log.get().info("started", fast_start_ms=round((next_sent - began) * 1000, 1),
                   imports_ms=round((time.perf_counter() - next_sent) * 1000, 1))
    if started is None:
        assert failure is not None  # noqa: S101 -- for mypy: no `started` means a `failure`
        log.get().error("register_failed", status=failure.status, error=str(failure))
        return 1
    try:
        launch = Launch(name=name, runtime_api=runtime_api, config=config, problem=problem, env=env)
        code = asyncio.run(run(launch, started))
    except KeyboardInterrupt:
        code = 0
    # A stdout whose reader is gone still holds the log lines it refused: flushing it must not turn the exit code
    # into a traceback.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # Everything is flushed and closed: skip the interpreter's teardown (freeing every module and object took
    # 80 to 190 ms here), which the SHUTDOWN deadline would otherwise count.
    os._exit(code)
