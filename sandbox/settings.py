"""The function under test: its code, handler, limits and the environment Lambda gives each process."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Variables an extension does not get (runtimes-extensions-api); rapid also strips every `_`-prefixed key.
# Everything else reaches it, PYTHONPATH included: an extension in Python that must not see the function's
# modules runs its interpreter with -E (as ours does).
NOT_FOR_EXTENSIONS: Final = frozenset({
    "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_RUNTIME_DIR", "LAMBDA_TASK_ROOT", "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT", "_HANDLER",
})
# Fake credentials of the documented shape: the sandbox reaches no AWS service.
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_ACCESS_KEY": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "sandbox-session-token",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSettings:
    function_dir: Path
    handler: str
    runtime_dir: Path
    """Where AWS's runtime interface client is installed: the sandbox's LAMBDA_RUNTIME_DIR."""
    layer_dir: Path | None = None
    function_name: str = "sandbox-function"
    function_version: str = "$LATEST"
    memory_mb: int = 128
    timeout_s: float = 3.0
    region: str = "us-east-1"
    account_id: str = "123456789012"
    env: Mapping[str, str] = field(default_factory=dict)
    init_timeout_s: float = 10.0

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_format(self) -> str:
        """Lambda's LoggingConfig.LogFormat, which reaches the runtime as AWS_LAMBDA_LOG_FORMAT: Text unless JSON
        (case-insensitive, as the runtime interface client reads it)."""
        return "JSON" if self.env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" else "Text"

    @property
    def python_version(self) -> str:
        return f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def runtime_version(self) -> str:
        return f"python:{self.python_version}.sandbox"

    def function_env(self, runtime_api: str, python_bin: Path) -> dict[str, str]:
        """What the runtime process sees: Lambda's reserved variables, then the function's own."""
        opt_python = f"/opt/python/lib/python{self.python_version}/site-packages:/opt/python"
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.function_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"sandbox/[{self.function_version}]stream",
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{self.python_version}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
            "_AWS_XRAY_DAEMON_PORT": "2000",
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": str(self.function_dir),
            "LAMBDA_RUNTIME_DIR": str(self.runtime_dir),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # Lambda's Python runtime puts its interpreter first on PATH (/var/lang/bin).
            "PATH": f"{python_bin.parent}:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "PYTHONPATH": f"{self.function_dir}:{opt_python}:{self.runtime_dir}",
            **FAKE_CREDENTIALS,
        }
        env.update(self.env)
        return env

    def runtime_env(self, runtime_api: str, python_bin: Path) -> dict[str, str]:
        return self.function_env(runtime_api, python_bin)

    def extension_env(self, runtime_api: str, python_bin: Path) -> dict[str, str]:
        return {key: value for key, value in self.function_env(runtime_api, python_bin).items()
                if key not in NOT_FOR_EXTENSIONS and not key.startswith("_")}

    def runtime_argv(self, python_bin: Path) -> list[str]:
        """As Lambda's bootstrap starts the runtime: through AWS_LAMBDA_EXEC_WRAPPER when the function sets one
        (Lambda's runtimes `exec -- "$AWS_LAMBDA_EXEC_WRAPPER" <runtime> <args>`)."""
        runtime = [str(python_bin), "-m", "awslambdaric", self.handler]
        wrapper = self.env.get("AWS_LAMBDA_EXEC_WRAPPER", "")
        return [wrapper, *runtime] if wrapper else runtime
