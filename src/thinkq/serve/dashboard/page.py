"""The live page's routes: the page, its scripts, and the JSON it polls.

=============================  ==========================================================
route                          what it answers
=============================  ==========================================================
GET /thinkq/                   the page (HTML; its scripts are the routes below)
GET /thinkq/dashboard.json     :meth:`Board.data`: figures, budget summary, history,
                               re-solve log, frontier
GET /thinkq/dashboard.js       the page's own script (``static/dashboard.js``)
GET /thinkq/dashboard.css      its style sheet beside :mod:`thinkq.web`'s
GET /thinkq/static/{name}      :mod:`thinkq.web`'s ``plot.js`` and ``thinkq.css``
=============================  ==========================================================

All behind the gateway's key (:mod:`thinkq.serve.dashboard.auth`). The page polls
``dashboard.json`` every :data:`POLL_SECONDS` seconds; nothing is computed per
generation request: the figures are read when the page asks, the history is sampled
at the re-solves, and the frontier is traced in a worker thread.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from thinkq.serve.controller import Plan
from thinkq.serve.dashboard.auth import HEADERS
from thinkq.serve.dashboard.frontier import FrontierCache
from thinkq.serve.dashboard.history import History
from thinkq.serve.dashboard.summary import budgets_summary
from thinkq.serve.estimator import Clock
from thinkq.serve.status import Gateway, figures
from thinkq.web import asset_route, page

__all__ = ["POLL_SECONDS", "Board", "Watched", "dashboard_routes"]

#: Seconds between two updates of the page.
POLL_SECONDS = 2.0
_OWN = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


class Watched(Gateway, Protocol):
    """The gateway as the page reads it: its state, history and clock."""

    history: History
    clock: Clock


@cache
def _own(name: str) -> str:
    return resources.files("thinkq.serve.dashboard").joinpath("static", name).read_text("utf-8")


class Board:
    """What ``GET /thinkq/dashboard.json`` returns, for one gateway."""

    def __init__(self, gateway: Watched) -> None:
        self.gateway = gateway
        self.frontier = FrontierCache(gateway.controller.at, clock=gateway.clock)
        self.summarised: tuple[Plan, dict[str, Any]] | None = None  # per plan: O(types)

    def data(self) -> dict[str, Any]:
        """Figures (as ``/thinkq/state``), budgets summary, history, frontier.

        Call it on the event loop (it starts the frontier's computation there).
        """
        g = self.gateway
        plan = g.controller.plan
        if self.summarised is None or self.summarised[0] is not plan:
            self.summarised = (plan, budgets_summary(g.profile, plan))
        return {
            "model": g.server.model,
            "mode": g.mode,
            "poll": POLL_SECONDS,
            "figures": figures(g),
            "budgets": self.summarised[1],
            "history": g.history.to_dict(),
            "frontier": self.frontier.get(plan),
            "frontier_error": self.frontier.error,
        }


def _page() -> str:
    body = _BODY.replace("{POLL}", str(int(POLL_SECONDS * 1000)))
    return page(title="thinkq gateway", body=body, inline=False, prefix="static/")


def dashboard_routes(gateway: Watched) -> list[Route]:
    """The page's routes (see the module docstring) over ``gateway``."""
    board = Board(gateway)

    async def index(request: Request) -> Response:
        return HTMLResponse(_page(), headers=HEADERS)

    async def data(request: Request) -> Response:
        return JSONResponse(board.data(), headers={"Cache-Control": "no-store"})

    async def own(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(_own(name), media_type=_OWN[name], headers={"Cache-Control": "no-cache"})

    return [
        Route("/thinkq/", index, methods=["GET"]),
        Route("/thinkq/dashboard.json", data, methods=["GET"]),
        *(Route(f"/thinkq/{name}", own, methods=["GET"]) for name in _OWN),
        asset_route("/thinkq/static/{name}"),
    ]


_BODY = """\
<link rel="stylesheet" href="dashboard.css">
<header class="tq-header">
  <h1>thinkq gateway</h1>
  <span class="tq-sub" id="model"></span>
  <span class="tq-badge" id="health" data-overloaded="">&nbsp;</span>
  <span class="tq-status" id="updated" data-poll="{POLL}">connecting</span>
</header>
<main class="tq-main">
  <section class="tq-card"><div class="tq-stats" id="figures"></div>
    <p class="tq-note" id="figures-note"></p></section>
  <div class="tq-grid-cols">
    <section class="tq-card"><h2>Mean system time, last hour</h2><div id="time-chart"></div>
      <p class="tq-note">Predicted: the model (eq. 6) at the estimated load;
      measured: the served requests of the window. One sample per re-solve.</p></section>
    <section class="tq-card"><h2>Accuracy-latency frontier at the current load</h2>
      <div id="frontier-chart"></div><p class="tq-note" id="frontier-note"></p></section>
  </div>
  <section class="tq-card" id="slo-card" hidden><h2>Latency objectives</h2>
    <div class="tq-grid-cols"><div id="slo-table"></div><div id="slo-chart"></div></div></section>
  <div class="tq-grid-cols">
    <section class="tq-card"><h2>Budgets in force</h2><p class="tq-note" id="budgets-note"></p>
      <div id="budgets-table"></div><div id="budgets-chart"></div></section>
    <section class="tq-card"><h2>Re-solves</h2><p class="tq-note" id="resolves-note"></p>
      <div id="resolves-table"></div></section>
  </div>
  <div class="tq-grid-cols">
    <section class="tq-card" id="server-card" hidden><h2>Server</h2>
      <div id="server"></div></section>
    <section class="tq-card" id="replicas-card" hidden><h2>Replicas</h2>
      <div id="replicas"></div></section>
  </div>
</main>
<script src="dashboard.js"></script>"""
