"""The execution environment's state machine: extensions, the runtime, and the INIT, INVOKE and SHUTDOWN
phases in the order rapid drives them, with the freeze between invocations."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sandbox import platform_events as pe
from sandbox.processes import Process, View, launch_problem, peak_memory_mb
from sandbox.records import ExtensionExit, ExtensionInit, InitRecord, InvokeRecord, ShutdownRecord
from sandbox.settings import FunctionSettings
from sandbox.subscription import Subscription
from sandbox.telemetry import TelemetryHub

MAX_EXTENSIONS: Final = 10
MAX_PAYLOAD_BYTES: Final = 6 * 1024 * 1024 + 100
EVENT_TYPES: Final = frozenset({"INVOKE", "SHUTDOWN"})
SHUTDOWN_WITH_EXTERNAL_MS: Final = 2_000
SHUTDOWN_WITH_INTERNAL_ONLY_MS: Final = 500
RUNTIME_RESERVE_MS: Final = 300
RUNTIME_RESERVE_WITH_INTERNAL_MS: Final = 500
OutputSink = Callable[[str, str], None]


class ApiError(Exception):
    """A documented error answer of the Lambda APIs: HTTP status plus rapid's errorType."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class Stage(enum.Enum):
    IDLE = "idle"
    INIT = "init"
    READY = "ready"
    INVOKE = "invoke"
    SHUTDOWN = "shutdown"


@dataclass(eq=False)
class Agent:
    """An extension: external ones are launched from the layer, internal ones only register."""

    name: str
    external: bool
    process: Process | None = None
    id: str | None = None
    events: frozenset[str] = frozenset()
    state: str = "Started"
    error_type: str | None = None
    """Why it could not be launched, as platform.extension's errorType."""
    waiting: asyncio.Future[dict[str, Any]] | None = None
    first_next_at: float | None = None
    last_next_at: float | None = None
    subscribed: bool = False

    @property
    def registered(self) -> bool:
        return self.id is not None


@dataclass(eq=False)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    trace_header: str | None
    released_at: float = 0.0
    response: bytes | None = None
    error: tuple[str, bytes] | None = None
    response_started_at: float | None = None
    response_done_at: float | None = None
    runtime_done_at: float | None = None
    released_wall: float = 0.0
    trace: dict[str, Any] | None = None


@dataclass(eq=False)
class Runtime:
    process: Process | None = None
    waiting: asyncio.Future[Invocation] | None = None
    init_error: str | None = None
    next_calls: int = 0


@dataclass(eq=False)
class Phase:
    """Per-generation state: a reset throws it away and the next init starts a fresh one."""

    agents: list[Agent] = field(default_factory=list)
    runtime: Runtime = field(default_factory=Runtime)
    fatal: str | None = None
    registration_open: bool = True
    init_duration_ms: float | None = None
    cold: bool = True


class Environment:
    """Drives one function's execution environment. The HTTP routes call the `*_api` methods."""

    def __init__(self, settings: FunctionSettings, hub: TelemetryHub, view: View, runtime_api: str,
                 python_bin: Path, on_output: OutputSink) -> None:
        self.settings = settings
        self.hub = hub
        self.view = view
        self.runtime_api = runtime_api
        self.python_bin = python_bin
        self.on_output = on_output
        self.stage = Stage.IDLE
        self.frozen = False
        self.phase = Phase()
        self.current: Invocation | None = None
        self.instance_id = f"{time.strftime('%Y/%m/%d')}/[{settings.function_version}]{uuid.uuid4().hex}"
        self._shutdown_event: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    # ---- waiting on state changes -------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, predicate: Callable[[], bool], deadline: float | None) -> bool:
        """Wait until `predicate()` holds or the monotonic `deadline` passes."""
        while not predicate():
            changed = self._changed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return True

    # ---- Extensions API -----------------------------------------------------------------------

    def register_api(self, name: str, body: Any, features: str) -> tuple[Agent, dict[str, Any]]:
        if not name:
            raise ApiError(403, "Extension.InvalidExtensionName", "Empty extension name")
        if not self.phase.registration_open or self.stage is not Stage.INIT:
            raise ApiError(403, "Extension.RegistrationClosed", "Extension registration closed already")
        if not isinstance(body, dict):
            raise ApiError(403, "InvalidRequestFormat", "Request body is not a JSON object")
        if body.get("configurationKeys"):
            raise ApiError(403, "InvalidRequestFormat",
                           "configurationKeys are deprecated; use environment variables instead")
        events = body.get("events", [])
        if not isinstance(events, list) or not all(e in EVENT_TYPES for e in events):
            raise ApiError(403, "Extension.InvalidEventType", f"Unknown event type in {events!r}")
        agent = next((a for a in self.phase.agents if a.external and a.name == name), None)
        if agent is None:
            # A name that matches no launched file is an internal extension (the name-matching trap).
            if any(a.name == name for a in self.phase.agents):
                raise ApiError(403, "Extension.InvalidExtensionState", f"Extension {name} already registered")
            if "SHUTDOWN" in events:
                raise ApiError(403, "Extension.InvalidEventType",
                               "ShutdownEventNotSupportedForInternalExtension")
            # rapid counts every agent it knows: one per launched file, plus the internal ones.
            if len(self.phase.agents) >= MAX_EXTENSIONS:
                raise ApiError(403, "Extension.TooManyExtensions", "Extension limit (10) reached")
            agent = Agent(name=name, external=False)
            self.phase.agents.append(agent)
        elif agent.registered:
            raise ApiError(403, "Extension.InvalidExtensionState", f"Extension {name} already registered")
        agent.id = str(uuid.uuid4())
        agent.events = frozenset(events)
        agent.state = "Registered"
        answer: dict[str, Any] = {"functionName": self.settings.function_name,
                                  "functionVersion": self.settings.function_version,
                                  "handler": self.settings.handler}
        if "accountId" in [f.strip() for f in features.split(",")]:
            answer["accountId"] = self.settings.account_id
        self._notify()
        return agent, answer

    def agent_for(self, identifier: str | None) -> Agent:
        if not identifier:
            raise ApiError(403, "Extension.MissingExtensionIdentifier", "Missing extension identifier")
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise ApiError(403, "Extension.InvalidExtensionIdentifier", "Invalid extension identifier") from None
        for agent in self.phase.agents:
            if agent.id == identifier:
                return agent
        raise ApiError(403, "Extension.UnknownExtensionIdentifier", "Unknown extension identifier")

    async def next_api(self, agent: Agent) -> dict[str, Any]:
        if agent.state in ("InitError", "ExitError") or agent.waiting is not None:
            raise ApiError(403, "Extension.InvalidExtensionState",
                           f"State transition from {agent.state} to Ready failed")
        now = time.monotonic()
        agent.first_next_at = agent.first_next_at or now
        agent.last_next_at = now
        if self._shutdown_event is not None and "SHUTDOWN" in agent.events:
            return self._shutdown_event
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        agent.waiting, agent.state = waiting, "Ready"
        self._notify()
        try:
            return await waiting
        finally:
            agent.waiting = None
            agent.state = "Running"

    def error_api(self, agent: Agent, error_type: str | None, kind: str) -> None:
        if not error_type:
            raise ApiError(403, "Extension.MissingHeader", "Missing Lambda-Extension-Function-Error-Type header")
        agent.state = "InitError" if kind == "init" else "ExitError"
        self.phase.fatal = self.phase.fatal or ("Extension.InitError" if kind == "init" else "Extension.ExitError")
        self._notify()

    def ensure_subscriptions_open(self) -> None:
        """Once init ended every subscribe is refused with 403, whatever its body (the 400 of a bad body only
        applies while subscriptions are open)."""
        if not self.hub.open or self.stage is not Stage.INIT:
            raise ApiError(403, "Telemetry.SubscriptionClosed", "Telemetry API subscription is closed")

    def subscribe_api(self, agent: Agent, subscription: Subscription) -> None:
        self.ensure_subscriptions_open()
        if agent.subscribed:
            raise ApiError(500, "Telemetry.SubscribeFailed", f"Extension {agent.name} is already subscribed")
        agent.subscribed = True
        self.hub.subscribe(agent.name, subscription)

    # ---- Runtime API --------------------------------------------------------------------------

    async def runtime_next_api(self) -> Invocation:
        runtime = self.phase.runtime
        if runtime.waiting is not None:
            raise ApiError(403, "InvalidStateTransition", "Runtime is already waiting for an invocation")
        runtime.next_calls += 1
        if self.current is not None and self.current.runtime_done_at is None:
            self.current.runtime_done_at = time.monotonic()
        waiting: asyncio.Future[Invocation] = asyncio.get_running_loop().create_future()
        runtime.waiting = waiting
        self._notify()
        try:
            return await waiting
        finally:
            runtime.waiting = None

    def invocation_for(self, request_id: str) -> Invocation:
        invocation = self.current
        if invocation is None or invocation.request_id != request_id or invocation.runtime_done_at is not None:
            raise ApiError(400, "InvalidRequestID", "Invalid request ID")
        if invocation.response is not None or invocation.error is not None:
            raise ApiError(403, "InvalidStateTransition", "State transition from RuntimeResponseSent failed")
        return invocation

    def response_api(self, invocation: Invocation, body: bytes, started_at: float) -> None:
        if len(body) > MAX_PAYLOAD_BYTES:
            raise ApiError(413, "RequestEntityTooLarge",
                           f"Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).")
        invocation.response_started_at, invocation.response_done_at = started_at, time.monotonic()
        invocation.response = body
        self._notify()

    def invocation_error_api(self, invocation: Invocation, error_type: str | None, body: bytes) -> None:
        invocation.response_done_at = time.monotonic()
        invocation.error = (error_type or "Runtime.Unknown", body)
        self._notify()

    def init_error_api(self, error_type: str | None) -> None:
        self.phase.runtime.init_error = error_type or "Runtime.Unknown"
        self._notify()

    # ---- processes ----------------------------------------------------------------------------

    def _processes(self) -> list[Process]:
        found = [a.process for a in self.phase.agents if a.process is not None]
        if self.phase.runtime.process is not None:
            found.append(self.phase.runtime.process)
        return found

    async def _launch(self, process: Process, argv: Sequence[str], env: dict[str, str], cwd: Path,
                      source: str) -> None:
        json_format = self.settings.log_format == "JSON"

        def on_line(line: str) -> None:
            self.on_output(process.name, line)
            # A record is an object only in the JSON log format; in Text a line that happens to be JSON stays a string.
            record = _json_object(line) if json_format else None
            self.hub.emit(pe.log_line(time.time(), source=source, line=line, json_record=record))

        await process.start(self.view.wrap(argv), env=env, cwd=cwd, on_line=on_line)
        self._watchers.append(asyncio.create_task(self._watch(process), name=f"watch-{process.name}"))

    async def _watch(self, process: Process) -> None:
        await process.wait()
        self._notify()
        if self.stage is Stage.SHUTDOWN:
            return
        # Exiting outside SHUTDOWN is a crash, even with exit code 0.
        is_runtime = process is self.phase.runtime.process
        if any(a.process is process for a in self.phase.agents) or is_runtime:
            self.phase.fatal = self.phase.fatal or ("Runtime.ExitError" if is_runtime else "Extension.Crash")
            for agent in self.phase.agents:
                if agent.process is process and agent.state not in ("InitError", "ExitError"):
                    agent.state = "Exited"

    def _extension_files(self) -> list[Path]:
        folder = (self.settings.layer_dir / "extensions") if self.settings.layer_dir else None
        if folder is None or not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if not p.is_dir())

    def _extension_path(self, file: Path) -> str:
        return f"/opt/extensions/{file.name}" if self.view.isolated else str(file)

    # ---- phases -------------------------------------------------------------------------------

    async def init(self) -> InitRecord:
        """The Init phase, within the 10 s init limit; then a freeze, or a reset after which the first
        invocation retries the init (a suppressed init)."""
        record = await self._init("init", time.monotonic() + self.settings.init_timeout_s)
        if record.error_type is None:
            await self._freeze()
        else:
            await self._reset("failure")
        return record

    async def _init(self, phase_name: str, deadline: float) -> InitRecord:
        """Extensions, then the runtime, until all called next or the monotonic `deadline` passed."""
        self.stage, self.phase = Stage.INIT, Phase()
        self.hub.open_subscriptions()
        started = time.time()
        self.hub.emit(pe.init_start(started, phase=phase_name, function_name=self.settings.function_name,
                                    function_version=self.settings.function_version,
                                    instance_id=self.instance_id, memory_mb=self.settings.memory_mb,
                                    runtime_version=self.settings.runtime_version))
        files = self._extension_files()
        if len(files) > MAX_EXTENSIONS:
            self.phase.fatal = "Extension.LaunchError"
        for file in files[:MAX_EXTENSIONS]:
            agent = Agent(name=file.name, external=True, process=Process(f"extension-{file.name}"))
            self.phase.agents.append(agent)
            problem = launch_problem(file, self.view.layer_dir if self.view.isolated else None)
            if problem is None:
                assert agent.process is not None
                try:
                    await self._launch(agent.process, [self._extension_path(file)], self.settings.extension_env(
                        self.runtime_api, self.python_bin), self.settings.layer_dir or Path("/"), "extension")
                except PermissionError:
                    problem = "PermissionDenied"
                except OSError:
                    problem = "UnknownError"
            if problem is not None:
                # A file that cannot be exec'd fails the init with Extension.LaunchError (rapid).
                agent.state, agent.error_type, agent.process = "LaunchError", problem, None
                self.phase.fatal = self.phase.fatal or "Extension.LaunchError"
        phase = self.phase
        done = await self._until(lambda: bool(phase.fatal) or all(
            a.registered for a in phase.agents if a.external), deadline)
        if done and not phase.fatal:
            phase.runtime.process = Process("runtime")
            await self._launch(phase.runtime.process, self.settings.runtime_argv(self.python_bin),
                               self.settings.runtime_env(self.runtime_api, self.python_bin),
                               self.settings.function_dir, "function")
            done = await self._until(lambda: bool(phase.fatal or phase.runtime.init_error)
                                     or phase.runtime.waiting is not None, deadline)
        phase.registration_open = False
        if done and not phase.fatal and not phase.runtime.init_error:
            done = await self._until(lambda: bool(phase.fatal) or all(
                a.waiting is not None for a in phase.agents if a.registered), deadline)
        self.hub.close_subscriptions()
        error_type = phase.fatal or phase.runtime.init_error or (None if done else "Runtime.Unknown")
        status = "success" if error_type is None else "error"
        ended = time.time()
        phase.init_duration_ms = pe.duration_ms(started, ended)
        self.hub.emit(pe.init_runtime_done(ended, phase=phase_name, status=status, error_type=error_type))
        for agent in phase.agents:
            self.hub.emit(pe.extension_state(ended, name=agent.name, state=agent.state, events=agent.events,
                                             error_type=agent.error_type))
        self.hub.emit(pe.init_report(ended, phase=phase_name, status=status if done else "timeout",
                                     error_type=error_type, init_duration_ms=phase.init_duration_ms))
        record = InitRecord(phase=phase_name, status=status if done else "timeout", error_type=error_type,
                            duration_ms=phase.init_duration_ms, extensions=[
                                ExtensionInit(name=a.name, state=a.state, events=sorted(a.events),
                                              ready_ms=_ms(a.process.started_at if a.process else None,
                                                           a.first_next_at))
                                for a in phase.agents])
        if error_type is None:
            self.stage = Stage.READY
        return record

    async def invoke(self, payload: bytes, *, trace_header: str | None = None) -> InvokeRecord:
        if self.stage is Stage.READY and self.phase.fatal:
            await self._reset("failure")
        request_id = str(uuid.uuid4())
        # The function's timeout covers the whole invocation, a suppressed init included: one deadline for both.
        begun_wall, begun = time.time(), time.monotonic()
        deadline = begun + self.settings.timeout_s
        deadline_ms = int((begun_wall + self.settings.timeout_s) * 1000)
        # With active tracing Lambda records the invocation as a segment of its own: its id is spanId.
        sampled = trace_header is not None and "Sampled=1" in trace_header
        trace = pe.tracing(trace_header, uuid.uuid4().hex[:16] if sampled else None)
        invocation = Invocation(request_id=request_id, payload=payload, trace_header=trace_header,
                                deadline_ms=deadline_ms, trace=trace)
        if self.stage is not Stage.READY:
            # After a reset or a failed init, Lambda retries the init at this invocation "with the configured function
            # timeout" (lambda-runtime-environment): inside it, under its deadline, not the 10 s init limit.
            init = await self._init("invoke", deadline)
            if init.error_type is not None:
                return await self._failed_init(invocation, init, begun_wall, begun)
        self._thaw()
        phase, runtime = self.phase, self.phase.runtime
        self.current, self.stage = invocation, Stage.INVOKE
        invocation.released_wall, invocation.released_at = time.time(), time.monotonic()
        self.hub.emit(pe.start(invocation.released_wall, request_id=request_id,
                               version=self.settings.function_version, trace=trace))
        event = {"eventType": "INVOKE", "deadlineMs": invocation.deadline_ms, "requestId": request_id,
                 "invokedFunctionArn": self.settings.function_arn,
                 **({"tracing": pe.tracing(trace_header)} if trace_header else {})}
        subscribers = [a for a in phase.agents if "INVOKE" in a.events]
        for agent in subscribers:  # rapid releases the extensions first, then the runtime
            if agent.waiting is not None:
                agent.waiting.set_result(event)
        if runtime.waiting is not None:
            runtime.waiting.set_result(invocation)
        await asyncio.sleep(0)  # let the released handlers run before we wait on their state
        runtime_done = await self._until(
            lambda: bool(phase.fatal) or invocation.runtime_done_at is not None, deadline)
        status, error_type = _outcome(invocation, phase.fatal, runtime_done)
        self.hub.emit(self._runtime_done_event(invocation, status, error_type))
        extensions_done = status == "success" or (status == "error" and not phase.fatal)
        if extensions_done:
            extensions_done = await self._until(lambda: bool(phase.fatal) or all(
                a.waiting is not None for a in subscribers), deadline)
            if not extensions_done:
                status, error_type = "timeout", "Sandbox.Timedout"
            elif phase.fatal:
                status, error_type = "error", phase.fatal
        ended = time.monotonic()
        nexts = [a.last_next_at for a in subscribers if a.last_next_at is not None]
        runtime_next = invocation.runtime_done_at or ended
        post_runtime = max([0.0, *(n - runtime_next for n in nexts)]) if extensions_done else ended - runtime_next
        memory_used = peak_memory_mb(self._processes())
        record = InvokeRecord(
            request_id=request_id, status=status, error_type=error_type,
            response=(invocation.response if invocation.response is not None
                      else _error_body(invocation, error_type, self.settings.timeout_s)),
            cold_start=phase.cold, duration_ms=_ms(invocation.released_at, ended) or 0.0,
            response_latency_ms=_ms(invocation.released_at, invocation.response_done_at),
            runtime_done_ms=_ms(invocation.released_at, invocation.runtime_done_at),
            post_runtime_extension_ms=round(post_runtime * 1000, 3))
        self.current, self.stage = None, Stage.READY
        if status in ("success", "error") and not phase.fatal:
            await self._freeze()
        else:
            await self._reset("timeout" if status == "timeout" else "failure")
        ended_wall = invocation.released_wall + (ended - invocation.released_at)
        overhead = [pe.Span(name="extensionOverhead", start_s=ended_wall - post_runtime, end_s=ended_wall)]
        self.hub.emit(pe.report(time.time(), request_id=request_id, status=status, error_type=error_type,
                                duration=record.duration_ms, memory_mb=self.settings.memory_mb,
                                max_memory_used_mb=memory_used,
                                init_duration=phase.init_duration_ms if phase.cold else None,
                                spans=overhead if subscribers else [], trace=trace))
        phase.cold = False
        return record

    async def _failed_init(self, invocation: Invocation, init: InitRecord, begun_wall: float,
                           begun: float) -> InvokeRecord:
        """The invocation whose suppressed init failed or ran out of its time: `platform.start` is still sent
        (rapid), then the outcome, the reset and the report, as for an invocation that failed."""
        timed_out = init.status == "timeout"
        error_type = "Sandbox.Timedout" if timed_out else (init.error_type or "Runtime.Unknown")
        status = "timeout" if timed_out else ("failure" if error_type.startswith("Sandbox.") else "error")
        invocation.released_wall, invocation.released_at = begun_wall, begun
        self.hub.emit(pe.start(time.time(), request_id=invocation.request_id,
                               version=self.settings.function_version, trace=invocation.trace))
        self.hub.emit(self._runtime_done_event(invocation, status, error_type))
        ended, memory_used = time.monotonic(), peak_memory_mb(self._processes())
        await self._reset("timeout" if timed_out else "failure")
        duration = _ms(begun, ended) or 0.0
        self.hub.emit(pe.report(time.time(), request_id=invocation.request_id, status=status, error_type=error_type,
                                duration=duration, memory_mb=self.settings.memory_mb, max_memory_used_mb=memory_used,
                                init_duration=init.duration_ms, spans=[], trace=invocation.trace))
        message = (f"Task timed out after {self.settings.timeout_s:.2f} seconds" if timed_out
                   else "Init failed")
        return InvokeRecord(request_id=invocation.request_id, status=status, error_type=error_type,
                            response=pe.json_bytes({"errorMessage": message, "errorType": error_type}),
                            cold_start=True, duration_ms=duration, response_latency_ms=None, runtime_done_ms=None,
                            post_runtime_extension_ms=0.0)

    def _runtime_done_event(self, invocation: Invocation, status: str, error_type: str | None) -> pe.TelemetryEvent:
        wall = _wall_clock(invocation)
        done_at = invocation.runtime_done_at or time.monotonic()
        spans: list[pe.Span] = []
        if invocation.response is not None and invocation.response_started_at and invocation.response_done_at:
            spans = [pe.Span(name="responseLatency", start_s=wall(invocation.released_at),
                             end_s=wall(invocation.response_started_at)),
                     pe.Span(name="responseDuration", start_s=wall(invocation.response_started_at),
                             end_s=wall(invocation.response_done_at)),
                     pe.Span(name="runtimeOverhead", start_s=wall(invocation.response_done_at),
                             end_s=wall(done_at))]
        produced = len(invocation.response) if invocation.response is not None else 0
        return pe.runtime_done(wall(done_at), request_id=invocation.request_id, status=status,
                               error_type=error_type,
                               duration=pe.duration_ms(invocation.released_at, done_at),
                               produced_bytes=produced, spans=spans, trace=invocation.trace)

    async def shutdown(self, reason: str = "spindown") -> ShutdownRecord:
        if self.stage is Stage.IDLE:  # reset and not initialised again: nothing is running
            return ShutdownRecord(reason=reason, deadline_ms=int(time.time() * 1000), runtime_exit_ms=None,
                                  extensions=[])
        return await self._shutdown(reason)

    async def _reset(self, reason: str) -> None:
        """A reset behaves like SHUTDOWN; the next invocation initialises a new generation."""
        await self._shutdown(reason)
        self.stage = Stage.IDLE

    async def _shutdown(self, reason: str) -> ShutdownRecord:
        self.stage = Stage.SHUTDOWN
        self._thaw()
        started = time.monotonic()
        phase = self.phase
        registered = [a for a in phase.agents if a.registered]
        budget_ms, reserve_ms = shutdown_limits_ms(external=any(a.external for a in registered),
                                                   internal=any(not a.external for a in registered))
        deadline = started + budget_ms / 1000
        deadline_ms = int((time.time() + budget_ms / 1000) * 1000)
        runtime = phase.runtime.process
        external = [a for a in phase.agents if a.external and a.process is not None and a.process.running]
        if runtime is not None and runtime.running:
            if not registered:
                runtime.signal(signal.SIGKILL)  # no extensions: no graceful shutdown at all
            else:
                runtime.signal(signal.SIGTERM)
                await self._until(lambda: not runtime.running, started + reserve_ms / 1000)
                runtime.signal(signal.SIGKILL)
        self.hub.flush_now()
        self._shutdown_event = {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms}
        for agent in external:
            if "SHUTDOWN" not in agent.events:
                assert agent.process is not None
                agent.process.signal(signal.SIGKILL)
            elif agent.waiting is not None:
                agent.waiting.set_result(self._shutdown_event)
        await self._until(lambda: not any(a.process.running for a in external if a.process), deadline)
        exits = [self._exit_record(agent, started, deadline) for agent in external]
        for process in self._processes():
            await process.close()
        runtime_exit = _ms(started, runtime.exited_at) if runtime else None
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers.clear()
        await self.hub.aclose()
        self._shutdown_event = None
        # Calls still parked on next belong to processes that are gone now.
        for waiting in [phase.runtime.waiting, *(a.waiting for a in phase.agents)]:
            if waiting is not None:
                waiting.cancel()
        return ShutdownRecord(reason=reason, deadline_ms=deadline_ms, runtime_exit_ms=runtime_exit,
                              extensions=exits)

    @staticmethod
    def _exit_record(agent: Agent, started: float, deadline: float) -> ExtensionExit:
        process = agent.process
        assert process is not None
        killed = process.running
        if killed:
            process.signal(signal.SIGKILL)
        exited_at = process.exited_at
        return ExtensionExit(name=agent.name, exit_ms=None if killed else _ms(started, exited_at),
                             exited_before_deadline=not killed and exited_at is not None and exited_at <= deadline,
                             killed=killed, returncode=process.returncode)

    async def _freeze(self) -> None:
        self.frozen = True
        self.hub.freeze()
        processes = self._processes()
        for process in processes:
            process.freeze()
        for process in processes:
            await process.stopped()

    def _thaw(self) -> None:
        if self.frozen:
            for process in self._processes():
                process.thaw()
            self.frozen = False
            self.hub.thaw()


def shutdown_limits_ms(*, external: bool, internal: bool) -> tuple[int, int]:
    """The Shutdown phase's limit and the runtime's reserve in it, by the extensions registered: none 0 ms, only
    internal ones 500 ms, external ones 2,000 ms of which the runtime gets 300 ms, or 500 ms when an internal
    extension is registered too (lambda-runtime-environment, runtimes-extensions-api)."""
    if external:
        return SHUTDOWN_WITH_EXTERNAL_MS, RUNTIME_RESERVE_WITH_INTERNAL_MS if internal else RUNTIME_RESERVE_MS
    if internal:
        return SHUTDOWN_WITH_INTERNAL_ONLY_MS, SHUTDOWN_WITH_INTERNAL_ONLY_MS
    return 0, 0


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


def _wall_clock(invocation: Invocation) -> Callable[[float], float]:
    """Map a monotonic reading in this invocation to wall-clock seconds."""
    return lambda mono: invocation.released_wall + (mono - invocation.released_at)


def _outcome(invocation: Invocation, fatal: str | None, runtime_done: bool) -> tuple[str, str | None]:
    if not runtime_done:
        return "timeout", "Sandbox.Timedout"
    if fatal:
        return ("failure" if fatal.startswith("Sandbox.") else "error"), fatal
    if invocation.error is not None:
        return "error", invocation.error[0]
    return "success", None


def _error_body(invocation: Invocation, error_type: str | None, timeout_s: float) -> bytes:
    if invocation.error is not None:
        return invocation.error[1]
    message = f"Task timed out after {timeout_s:.2f} seconds"
    return pe.json_bytes({"errorMessage": message, "errorType": error_type})


def _json_object(line: str) -> dict[str, Any] | None:
    """The object form of a line in Lambda's JSON log format; None for a line that is not a JSON object."""
    if not line.startswith("{"):
        return None
    with contextlib.suppress(ValueError):
        value = pe.json_loads(line)
        if isinstance(value, dict):
            return value
    return None
