"""``thinkq controller``: the estimation and re-solve loop without a proxy.

For fleets whose gateway is something else (an enforcer inside the LiteLLM proxy,
say): the enforcers report arrivals and completions to Redis (``docs/fleet.md``), this
process estimates the fleet's load from them, re-solves every ``--resolve-every``
seconds under the lease (:mod:`thinkq.fleet`) and publishes the plan the enforcers
apply. Ctrl-C (or SIGTERM) stops it cleanly. A bad ``--state`` or profile prints one
line and exits with 2; Redis unreachable at start, one line and exit 1.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Annotated

import typer

from thinkq.cli import _slo
from thinkq.cli._app import app, fail, load
from thinkq.cli._options import ProfileArgument, slo_option
from thinkq.errors import StateError
from thinkq.fleet import Member, Store, check_url
from thinkq.profile import Profile
from thinkq.serve.controller import DEFAULT_HYSTERESIS, Controller, Plan
from thinkq.serve.estimator import Estimator
from thinkq.serve.gateway import PRIOR_TIME
from thinkq.serve.status import announce
from thinkq.slo import Objective

__all__ = ["controller_command"]

log = logging.getLogger("thinkq.controller")


@app.command("controller")
def controller_command(
    state: Annotated[
        str,
        typer.Option(
            "--state",
            metavar="URL",
            help="The shared state: redis://HOST:PORT/DB (where the enforcers report).",
        ),
    ],
    profile_path: ProfileArgument = None,
    resolve_every: Annotated[
        float, typer.Option("--resolve-every", help="Seconds between re-solves.", min=0.01)
    ] = 5.0,
    window: Annotated[
        float, typer.Option("--window", help="Seconds of history of the estimates.", min=0.01)
    ] = 60.0,
    hysteresis: Annotated[
        float,
        typer.Option("--hysteresis", help="Relative gain in J needed to switch budgets.", min=0),
    ] = DEFAULT_HYSTERESIS,
    slo: Annotated[
        list[str] | None,
        slo_option("as thinkq serve --slo."),
    ] = None,
) -> None:
    """Estimate the load that enforcers report to Redis and publish the plan there."""
    profile = load(profile_path, rate=None, alpha=None, max_tokens=None)
    objectives = _slo.objectives(slo, profile) if slo else ()
    try:
        check_url(state)
    except ValueError as exc:
        fail(f"option --state: {str(exc).removeprefix('state: ')}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    asyncio.run(_main(state, profile, objectives, resolve_every, window, hysteresis))


async def _main(
    url: str,
    profile: Profile,
    objectives: tuple[Objective, ...],
    period: float,
    window: float,
    hysteresis: float,
) -> None:
    store = Store(url)
    try:
        await store.ping()
    except StateError as exc:
        await store.aclose()
        sys.stderr.write(f"error: {' '.join(str(exc).splitlines())}\n")
        raise typer.Exit(1) from None
    estimator = Estimator(
        prior_rate=profile.rate, prior_shares=profile.share, window=window,
        horizon=period if period < window else None, prior_time=PRIOR_TIME,
    )  # fmt: skip
    controller = Controller(profile, estimator, hysteresis=hysteresis, objectives=objectives)

    def published(plan: Plan) -> None:
        announce(plan, profile.names, log)
        if member.role == "leader":
            budgets = ", ".join(
                f"{n}={b}" for n, b in zip(profile.names, plan.budgets, strict=True)
            )
            log.info("plan published: rate %.4g/s, budgets %s", plan.rate, budgets)

    member = Member(
        store, controller, period=period, clock=time.monotonic, estimator=estimator,
        fallback=False, on_plan=published,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("controller %s on %s, re-solving every %g s", member.id, store.shown, period)
    task = asyncio.create_task(member.run())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    log.info("controller stopped")
