"""The Runtime (2018-06-01), Extensions (2020-01-01) and Telemetry (2022-07-01) APIs on one HTTP server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.environment import ApiError, Environment
from sandbox.subscription import SubscriptionInvalid, parse_subscription

ENVIRONMENT = web.AppKey("environment", Environment)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ID_HEADER = "Lambda-Extension-Identifier"
ACCEPTED = {"status": "OK"}


def make_app(environment: Environment) -> web.Application:
    app = web.Application(middlewares=[_render_errors], client_max_size=8 * 1024 * 1024)
    app[ENVIRONMENT] = environment
    app.router.add_get("/2018-06-01/runtime/invocation/next", runtime_next)
    app.router.add_post("/2018-06-01/runtime/invocation/{request_id}/response", runtime_response)
    app.router.add_post("/2018-06-01/runtime/invocation/{request_id}/error", runtime_error)
    app.router.add_post("/2018-06-01/runtime/init/error", runtime_init_error)
    app.router.add_post("/2020-01-01/extension/register", register)
    app.router.add_get("/2020-01-01/extension/event/next", extension_next)
    app.router.add_post("/2020-01-01/extension/init/error", extension_init_error)
    app.router.add_post("/2020-01-01/extension/exit/error", extension_exit_error)
    app.router.add_put("/2022-07-01/telemetry", subscribe)
    return app


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"errorMessage": message, "errorType": error_type}, status=status)


@web.middleware
async def _render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error(error.status, error.error_type, error.message)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(403, "InvalidRequestFormat", "Request body is not valid JSON") from None


# ---- Runtime API ---------------------------------------------------------------------------------

async def runtime_next(request: web.Request) -> web.Response:
    invocation = await request.app[ENVIRONMENT].runtime_next_api()
    environment = request.app[ENVIRONMENT]
    headers = {
        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": environment.settings.function_arn,
        "Content-Type": "application/json",
    }
    if invocation.trace_header:
        headers["Lambda-Runtime-Trace-Id"] = invocation.trace_header
    return web.Response(body=invocation.payload, headers=headers)


async def runtime_response(request: web.Request) -> web.Response:
    started_at = time.monotonic()
    environment = request.app[ENVIRONMENT]
    invocation = environment.invocation_for(request.match_info["request_id"])
    body = await request.read()
    environment.response_api(invocation, body, started_at)
    return web.json_response(ACCEPTED, status=202)


async def runtime_error(request: web.Request) -> web.Response:
    environment = request.app[ENVIRONMENT]
    invocation = environment.invocation_for(request.match_info["request_id"])
    body = await request.read()
    environment.invocation_error_api(invocation, request.headers.get("Lambda-Runtime-Function-Error-Type"), body)
    return web.json_response(ACCEPTED, status=202)


async def runtime_init_error(request: web.Request) -> web.Response:
    await request.read()
    request.app[ENVIRONMENT].init_error_api(request.headers.get("Lambda-Runtime-Function-Error-Type"))
    return web.json_response(ACCEPTED, status=202)


# ---- Extensions API ------------------------------------------------------------------------------

async def register(request: web.Request) -> web.Response:
    body = await _json_body(request)
    agent, answer = request.app[ENVIRONMENT].register_api(
        request.headers.get("Lambda-Extension-Name", ""), body,
        request.headers.get("Lambda-Extension-Accept-Feature", ""))
    assert agent.id is not None
    return web.json_response(answer, headers={ID_HEADER: agent.id})


async def extension_next(request: web.Request) -> web.Response:
    environment = request.app[ENVIRONMENT]
    agent = environment.agent_for(request.headers.get(ID_HEADER))
    event = await environment.next_api(agent)
    headers = {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())}
    return web.json_response(event, headers=headers)


async def _extension_error(request: web.Request, kind: str) -> web.Response:
    environment = request.app[ENVIRONMENT]
    agent = environment.agent_for(request.headers.get(ID_HEADER))
    await request.read()
    environment.error_api(agent, request.headers.get("Lambda-Extension-Function-Error-Type"), kind)
    return web.json_response(ACCEPTED, status=202)


async def extension_init_error(request: web.Request) -> web.Response:
    return await _extension_error(request, "init")


async def extension_exit_error(request: web.Request) -> web.Response:
    return await _extension_error(request, "exit")


# ---- Telemetry API -------------------------------------------------------------------------------

async def subscribe(request: web.Request) -> web.Response:
    environment = request.app[ENVIRONMENT]
    agent = environment.agent_for(request.headers.get(ID_HEADER))
    raw = await request.read()
    # rapid turns subscriptions off at the end of init; after that a subscribe is refused before its body is read.
    environment.ensure_subscriptions_open()
    try:
        subscription = parse_subscription(json.loads(raw))
    except (ValueError, SubscriptionInvalid) as problem:
        message = str(problem) if isinstance(problem, SubscriptionInvalid) else "request body is not valid JSON"
        return _error(400, "ValidationError", message)
    environment.subscribe_api(agent, subscription)
    return web.json_response("OK")
