"""Command line: the only place that reads os.environ, calls asyncio.run and picks the exit code."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from extension import log
from extension.app import Launch, run
from extension.config import Config
from extension.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    """`argv[0]`, if given, is the registered name: the launcher passes its own file name."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else os.path.basename(sys.argv[0])
    env = os.environ
    try:
        launch = Launch(name=name, runtime_api=env.get("AWS_LAMBDA_RUNTIME_API", ""), config=Config.from_env(env))
    except ConfigError as problem:
        launch = Launch(name=name, runtime_api=env.get("AWS_LAMBDA_RUNTIME_API", ""), config=None, problem=problem)
    log.configure(launch.config.log_level if launch.config else "info", extension_name=name)
    try:
        return asyncio.run(run(launch))
    except KeyboardInterrupt:
        return 0
