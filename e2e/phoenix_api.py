"""Phoenix's REST API, the read side we need: a project's id and its spans as plain values, and the UI's URLs."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp

# Where spans go whose resource names no project (no `openinference.project.name`): all of ours.
DEFAULT_PROJECT: Final = "default"
_PAGE: Final = 1000  # the largest page the spans endpoint serves


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSpan:
    """A span as Phoenix keeps it: times to the microsecond (its database holds no finer), no OTLP span kind."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_time: dt.datetime
    end_time: dt.datetime
    status_code: str  # UNSET, OK or ERROR
    status_message: str
    attributes: Mapping[str, Any]


def parse_span(item: Mapping[str, Any]) -> StoredSpan:
    """One item of `GET /v1/projects/{project}/spans`."""
    return StoredSpan(
        name=item["name"], trace_id=item["context"]["trace_id"], span_id=item["context"]["span_id"],
        parent_id=item.get("parent_id"), start_time=dt.datetime.fromisoformat(item["start_time"]),
        end_time=dt.datetime.fromisoformat(item["end_time"]), status_code=item["status_code"],
        status_message=item.get("status_message") or "", attributes=item.get("attributes") or {})


def trace_url(url: str, project_id: str, trace_id: str) -> str:
    """The UI's view of one trace: its span tree, the root span's attributes beside it."""
    return f"{url}/projects/{quote(project_id)}/traces/{trace_id}"


def project_url(url: str, project_id: str) -> str:
    """The UI's list of a project's traces."""
    return f"{url}/projects/{quote(project_id)}"


class PhoenixAPI:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url

    async def project_id(self, name: str = DEFAULT_PROJECT) -> str:
        """The id the UI's URLs use (the REST API also takes the name)."""
        body = await self._get(f"/v1/projects/{quote(name)}")
        project_id: str = body["data"]["id"]
        return project_id

    async def spans(self, project: str = DEFAULT_PROJECT) -> list[StoredSpan]:
        """Every span of the project, page by page."""
        found: list[StoredSpan] = []
        params = {"limit": str(_PAGE)}
        while True:
            body = await self._get(f"/v1/projects/{quote(project)}/spans", params)
            found.extend(parse_span(item) for item in body["data"])
            if not body.get("next_cursor"):
                return found
            params["cursor"] = body["next_cursor"]

    async def spans_when(self, ready: Callable[[list[StoredSpan]], bool], *, timeout_s: float,
                         project: str = DEFAULT_PROJECT) -> list[StoredSpan]:
        """The project's spans once `ready` says they are all there, or what is there at the deadline.

        Phoenix answers an OTLP export once the spans are queued, and stores them a moment later.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            spans = await self.spans(project)
            if ready(spans) or time.monotonic() >= deadline:
                return spans
            await asyncio.sleep(0.2)

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        async with self._session.get(f"{self._url}{path}", params=params) as response:
            response.raise_for_status()
            return await response.json()
