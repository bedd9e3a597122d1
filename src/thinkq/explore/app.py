"""The what-if page's server (Starlette): the page, the profile, and one JSON endpoint.

Routes
    ``GET /``              the page (scripts and style inlined: nothing else to fetch)
    ``GET /api/profile``   the profile's defaults and the sliders' ranges
    ``POST /api/solve``    a what-if answer (:func:`thinkq.explore.whatif.what_if`) for
                           the JSON object's settings; 400 with ``{"error": "field: ..."}``
                           for a bad value, 413 for a body over ``body_limit`` bytes

The page has no key: serve it on loopback (``thinkq explore`` warns otherwise). Solves
run one at a time in a worker thread, so the server stays responsive while one runs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from thinkq._json import finite
from thinkq.explore.page import explore_page
from thinkq.explore.settings import describe, parse
from thinkq.explore.whatif import what_if
from thinkq.profile import Profile

__all__ = ["BODY_LIMIT", "create_app"]

#: The largest request body the endpoint reads, in bytes (a settings object is ~100).
BODY_LIMIT = 4096


def _json(data: Any, status: int = 200) -> Response:
    text = json.dumps(finite(data), allow_nan=False, separators=(",", ":"))
    headers = {"Cache-Control": "no-store"}
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _error(message: str, status: int = 400) -> Response:
    field = message.split(":", 1)[0]
    return _json({"error": " ".join(message.split()), "field": field}, status)


def create_app(profile: Profile, *, body_limit: int = BODY_LIMIT) -> Starlette:
    """The what-if app for ``profile`` (its operating point is the page's default)."""
    page = explore_page(title=f"thinkq explore: {profile.source}")
    about = describe(profile)
    lock = asyncio.Lock()

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def profile_info(request: Request) -> Response:
        return _json(about)

    async def solve_endpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > body_limit:
            return _error(f"body: over {body_limit} bytes", 413)
        try:
            data = json.loads(body or b"{}")
            settings = parse(data, profile)
            trace = data.get("frontier", True)
            if not isinstance(trace, bool):
                raise ValueError(f"frontier: expected true or false, got {trace!r}")
        except json.JSONDecodeError as exc:
            return _error(f"body: not JSON ({exc.msg} at character {exc.pos})")
        except ValueError as exc:
            return _error(str(exc))
        async with lock:
            try:
                answer = await run_in_threadpool(what_if, profile, settings, trace=trace)
            except ValueError as exc:
                return _error(str(exc))
        return _json(answer)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/profile", profile_info, methods=["GET"]),
        Route("/api/solve", solve_endpoint, methods=["POST"]),
    ]
    return Starlette(routes=routes)
