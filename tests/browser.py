"""A real headless browser for the page tests: Debian's ``chromium`` driven by Playwright.

:func:`ensure_installed` finds Debian's ``chromium`` (``/usr/bin/chromium``); when it is
missing it is installed with ``apt-get install -y chromium`` if this process runs as
root (as CI does), otherwise the test fails with a message naming the package. No
browser is ever downloaded (never ``playwright install``): Playwright's Python wheel
carries only its driver, which is pointed at the system binary.

:func:`chromium` opens a headless browser with a fresh profile and one page, with the
flags a closed network needs, and yields a :class:`Browser`: the page and every URL it
requested, in order. Requests that leave loopback are recorded and then aborted (the
network is closed anyway; aborting them makes the failure immediate instead of a DNS
timeout), so a test asserts ``browser.outside(origin) == []`` to show that a page uses
nothing but its own server. :func:`screenshot` saves a full-page PNG under
``docs/screenshots/``, where the README shows it.

Playwright's sync API runs its own event loop in this thread while a :func:`chromium`
block is open: inside it, call no ``asyncio.run``; run servers in a thread of their own
(:func:`serving` does that for an ASGI app). Outside the block the thread is as before,
so asyncio-based tests in the same session are unaffected.

Run as a script (``python tests/browser.py``, as ``.ci/run`` does), it installs the
browser if needed and prints its path and version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from playwright.sync_api import Page, Route, sync_playwright

from apt_packages import ensure
from ports import free_port

__all__ = [
    "Browser",
    "chromium",
    "ensure_installed",
    "free_port",
    "origin_of",
    "screenshot",
    "serving",
]

PACKAGE = "chromium"
BINARY = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
# headless on a closed network: no sandbox (root in a container), no GPU, and none of
# the background traffic (QUIC probes, component updates, sync, first-run pages)
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
IGNORED_SCHEMES = frozenset({"data", "blob", "about"})


def _found() -> str | None:
    if os.access(BINARY, os.X_OK):
        return BINARY
    return shutil.which(PACKAGE)


def ensure_installed() -> str:
    """The path of Debian's ``chromium``, installed with apt-get when missing and root."""
    return ensure(PACKAGE, _found)


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the default port written out)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme, 0)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}:{port}"


@dataclass
class Browser:
    """A headless page, every URL it requested (in order), and the uncaught errors of
    its scripts (``errors``: a page test asserts it stays empty)."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def outside(self, origin: str) -> list[str]:
        """The requested URLs not on ``origin`` (``scheme://host:port``);
        ``data:``, ``blob:`` and ``about:`` URLs are ignored."""
        own = origin_of(origin)
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in IGNORED_SCHEMES and origin_of(url) != own
        ]


def _keep_on_loopback(route: Route) -> None:
    host = urlsplit(route.request.url).hostname or ""
    if urlsplit(route.request.url).scheme in IGNORED_SCHEMES or host in LOOPBACK:
        route.continue_()
    else:
        route.abort("blockedbyclient")


@contextmanager
def chromium(*, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless Debian ``chromium`` with a fresh profile and one page of
    ``width`` x ``height`` CSS pixels; requests that leave loopback are recorded
    in :attr:`Browser.requests` and aborted."""
    binary = ensure_installed()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=binary, headless=True, args=list(FLAGS)
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route("**/*", _keep_on_loopback)
            page = context.new_page()
            seen = Browser(page)
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("pageerror", lambda error: seen.errors.append(f"{error.name}: {error}"))
            yield seen
            context.close()
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of ``page`` in ``docs/screenshots/NAME.png``; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def serving(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1 in a thread of its own (its
    own event loop, so a :func:`chromium` block can load it); yield its base URL
    (``http://127.0.0.1:PORT``) once it answers, stop it after."""
    port = free_port() if port is None else port
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", log_level="warning", lifespan="auto"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the app did not start serving on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


if __name__ == "__main__":
    binary = ensure_installed()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    print(binary, version.stdout.strip())
