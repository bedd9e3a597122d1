"""The real-browser harness (tests/browser.py) on a tiny page of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from browser import Browser, chromium, origin_of, screenshot, serving

PAGE = """<!doctype html>
<title>harness</title>
<button id="ping">ping</button> <span id="answer">nothing yet</span>
<script>
document.getElementById("ping").onclick = async () => {
  const reply = await fetch("/api/ping?n=" + (++window.clicks || (window.clicks = 1)));
  document.getElementById("answer").textContent = (await reply.json()).pong;
};
</script>
"""
LEAKY = """<!doctype html>
<title>leaky</title>
<script src="https://cdn.example.com/lib.js"></script>
<p id="done">loaded</p>
<script>fetch("http://203.0.113.7:9/beacon").catch(() => {});</script>
"""
LIVE = """<!doctype html>
<title>live</title>
<p id="count">0</p>
<script>
const source = new EventSource("/api/events");
source.onmessage = (event) => { document.getElementById("count").textContent = event.data; };
</script>
<button id="broken" onclick="undefinedFunction()">broken</button>
"""


def _app() -> Starlette:
    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def leaky(request: Request) -> HTMLResponse:
        return HTMLResponse(LEAKY)

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"pong": f"pong {request.query_params['n']}"})

    async def live(request: Request) -> HTMLResponse:
        return HTMLResponse(LIVE)

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            for n in range(1, 4):
                yield f"data: {n}\n\n"
                await asyncio.sleep(0.1)
            await asyncio.sleep(60)  # an open stream, as a live page's

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/leaky", leaky),
            Route("/live", live),
            Route("/api/ping", ping),
            Route("/api/events", events),
        ]
    )


def test_a_click_fetches_from_the_page_s_own_server_only() -> None:
    with serving(_app()) as base, chromium(width=640, height=400) as browser:
        browser.page.goto(base + "/")
        browser.page.click("#ping")
        browser.page.wait_for_function("document.getElementById('answer').textContent === 'pong 1'")
        browser.page.click("#ping")
        browser.page.wait_for_function("document.getElementById('answer').textContent === 'pong 2'")
        assert browser.requests[0] == base + "/"
        assert [url for url in browser.requests if "/api/" in url] == [
            base + "/api/ping?n=1",
            base + "/api/ping?n=2",
        ]
        assert browser.outside(base) == []
        path = screenshot(browser.page, "test-harness")
    try:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        path.unlink()


def test_requests_that_leave_the_server_show_up_in_outside() -> None:
    with serving(_app()) as base, chromium() as browser:
        browser.page.goto(base + "/leaky")
        assert browser.page.text_content("#done") == "loaded"  # the blocked script did not hang it
        browser.page.wait_for_function("true")
        browser.page.wait_for_timeout(200)  # let the beacon's fetch be issued
        outside = browser.outside(base)
        assert "https://cdn.example.com/lib.js" in outside
        assert "http://203.0.113.7:9/beacon" in outside
        assert base + "/leaky" not in outside


def test_server_sent_events_stream_through_and_script_errors_are_recorded() -> None:
    with serving(_app()) as base, chromium() as browser:
        browser.page.goto(base + "/live")
        browser.page.wait_for_function("document.getElementById('count').textContent === '3'")
        assert browser.errors == []
        browser.page.click("#broken")
        browser.page.wait_for_function("true")
        assert len(browser.errors) == 1
        assert "undefinedFunction" in browser.errors[0]
        assert browser.outside(base) == []


def test_outside_compares_whole_origins() -> None:
    seen = Browser.__new__(Browser)
    seen.requests = [
        "http://127.0.0.1:8000/a",
        "http://127.0.0.1:8001/b",  # another port is another origin
        "http://localhost:8000/c",  # another host too
        "https://127.0.0.1:8000/d",  # and another scheme
        "data:text/plain,x",
        "blob:http://127.0.0.1:8000/1234",
        "about:blank",
    ]
    assert seen.outside("http://127.0.0.1:8000") == seen.requests[1:4]
    assert origin_of("http://example.com/x") == "http://example.com:80"
    assert origin_of("https://[::1]/x") == "https://[::1]:443"


@pytest.mark.parametrize("when", ["before", "after"])
def test_asyncio_runs_around_a_browser_block(when: str) -> None:
    """Playwright's sync API runs its own loop while a block is open; around it (and in
    the asyncio-based tests of the same session) ``asyncio.run`` still works."""

    async def two() -> int:
        await asyncio.sleep(0)
        return 2

    if when == "before":
        assert asyncio.run(two()) == 2
    with serving(_app()) as base, chromium() as browser:
        browser.page.goto(base + "/")
        assert browser.page.title() == "harness"
    assert asyncio.run(two()) == 2
