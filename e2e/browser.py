"""Headless Chromium: a page's DOM after its scripts ran, and a screenshot of it, within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

WINDOW: Final = (1600, 1000)
# Virtual time lets the page's scripts run and its API calls finish, then the DOM and the pixels are taken.
BUDGET_MS: Final = 15_000
TIMEOUT_S: Final = 90.0
_HIDDEN: Final = frozenset({"script", "style", "noscript", "template"})


class BrowserError(RuntimeError):
    """Chromium is missing, failed, or did not finish in time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    url: str
    dom: str
    screenshot: Path

    @property
    def text(self) -> str:
        return page_text(self.dom)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.extend(data.split())


def page_text(dom: str) -> str:
    """The words a reader sees (no markup, scripts or styles), one space apart."""
    parser = _Text()
    parser.feed(dom)
    parser.close()
    return " ".join(parser.words)


def chromium_argv(executable: str, url: str, *, screenshot: Path, profile_dir: Path,
                  window: tuple[int, int] = WINDOW, budget_ms: int = BUDGET_MS) -> list[str]:
    return [
        executable, "--headless",
        # Chromium refuses its own sandbox as root (CI containers); the page is our local Phoenix.
        "--no-sandbox", "--disable-gpu",
        # Nothing but the page: no first-run work, updates, sync or other background traffic.
        "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile_dir}",
        # The trace view slides in; without this the screenshot may catch it halfway, over the trace list.
        "--force-prefers-reduced-motion",
        f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}", "--dump-dom", url,
    ]


async def capture(url: str, screenshot: Path, *, window: tuple[int, int] = WINDOW, budget_ms: int = BUDGET_MS,
                  timeout_s: float = TIMEOUT_S) -> Capture:
    """Open `url` in a fresh profile; return its DOM and save its screenshot (PNG) to `screenshot`."""
    executable = shutil.which("chromium")
    if executable is None:
        raise BrowserError("no chromium on PATH (Debian: `apt-get install chromium`; `make test-phoenix` does)")
    screenshot = screenshot.resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        argv = chromium_argv(executable, url, screenshot=screenshot, profile_dir=Path(profile), window=window,
                             budget_ms=budget_ms)
        # A session of its own: Chromium is a tree of processes (zygote, renderer, GPU, network), all in its group.
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            dom, errors = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            raise BrowserError(f"chromium did not finish within {timeout_s:.0f} s on {url}") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    if process.returncode != 0 or not screenshot.exists():
        tail = "\n".join(errors.decode(errors="replace").splitlines()[-20:])
        raise BrowserError(f"chromium exited with {process.returncode} on {url}:\n{tail}")
    return Capture(url=url, dom=dom.decode(errors="replace"), screenshot=screenshot)
