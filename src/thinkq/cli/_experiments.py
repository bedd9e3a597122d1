"""``thinkq reproduce`` and ``thinkq sweep``."""

from __future__ import annotations

import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thinkq.cli._app import app, dump, fail, load, num, progress, wrote
from thinkq.cli._law import with_law
from thinkq.cli._options import (
    JsonOption,
    ProfileArgument,
    RateOption,
    Tau0Option,
    Tau1Option,
)
from thinkq.errors import ProfileError, ThinkqError
from thinkq.paper import figures
from thinkq.paper.reproduce import reproduce
from thinkq.paper.sweep import Sweep, sweep
from thinkq.profile import Profile
from thinkq.simulate import simulate

__all__ = ["reproduce_command", "sweep_command"]

#: The most values a sweep takes (each is a solve and a simulation).
MAX_POINTS = 10_000

# --------------------------------------------------------------------------- reproduce


@app.command("reproduce")
def reproduce_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the tables, figures and report.")
    ] = Path("reproduction"),
    profile_path: ProfileArgument = None,
) -> None:
    """Reproduce the paper's Table I and figures 2-4, with a report that compares."""
    profile = load(profile_path, rate=None, alpha=None, max_tokens=None)
    try:  # a profile the simulator refuses (variance around t0 = 0) fails before any file
        simulate(profile, np.zeros(profile.size), queries=20, seed=0)
    except ValueError as exc:
        fail(str(exc))
    console = Console(stderr=True)
    try:
        with console.status("reproducing") as status:
            result = reproduce(profile, out, progress=lambda step: status.update(step))
    except OSError as exc:
        fail(f"option --out: {out}: {exc.strerror or exc}")
    wrote(result.files)
    for part in result.skipped:  # the rest is complete: a note, not a failure
        sys.stderr.write(f"warning: skipped {part}\n")


# --------------------------------------------------------------------------- sweep


class Over(StrEnum):
    """Values of ``--over``."""

    rate = "rate"
    alpha = "alpha"
    slots = "slots"


@app.command("sweep")
def sweep_command(
    over: Annotated[Over, typer.Option("--over", help="The parameter to sweep.")],
    start: Annotated[float, typer.Option("--from", help="First value.")],
    stop: Annotated[float, typer.Option("--to", help="Last value.")],
    profile_path: ProfileArgument = None,
    points: Annotated[
        int, typer.Option("--points", help="Number of values.", min=2, max=MAX_POINTS)
    ] = 20,
    queries: Annotated[
        int, typer.Option("--queries", help="Simulated queries per point (p95); 0: none.", min=0)
    ] = 20_000,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the sweep (PNG or SVG file).")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulations of the points.", min=0)
    ] = 0,
    rate: RateOption = None,
    tau0: Tau0Option = None,
    tau1: Tau1Option = None,
    as_json: JsonOption = False,
) -> None:
    """Optimal budgets, accuracy and system time across a range of rate, alpha or slots."""
    profile = _sweep_profile(load(profile_path, rate=None, alpha=None, max_tokens=None),
                             over, stop, rate, tau0, tau1)  # fmt: skip
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        fail(f"option --plot: {plot}: use a .png or .svg file name")
    try:
        with progress("sweeping", True) as update:
            result = sweep(
                profile, over=over.value, start=start, stop=stop, points=points,
                queries=queries or None, seed=seed, progress=update,
            )  # fmt: skip
    except (ValueError, ThinkqError) as exc:
        name, colon, rest = str(exc).partition(":")
        options = {"start, stop": "--from/--to", "points": "--points", "queries": "--queries"}
        option = (options | {"over": "--over"}).get(name)
        fail(f"option {option}:{rest}" if colon and option else str(exc))
    if plot is not None:
        try:
            drawn = figures.save(
                figures.draw_sweep(result), plot.with_suffix(""), formats=(plot.suffix[1:],)
            )
        except OSError as exc:
            fail(f"option --plot: {plot}: {exc.strerror or exc}")
        wrote(drawn)
    if as_json:
        dump(result.to_dict() | {"seed": seed, "queries": queries}, "sweep")
    else:
        _render_sweep(Console(), result)


def _sweep_profile(
    profile: Profile,
    over: Over,
    stop: float,
    rate: float | None,
    tau0: float | None,
    tau1: float | None,
) -> Profile:
    """The profile swept: with ``--tau0``/``--tau1`` and at ``--rate``."""
    if over is Over.slots or tau0 is not None or tau1 is not None:
        # the largest B swept carries the most load: the rate is checked against it
        most = int(stop) if over is Over.slots and float(stop).is_integer() and stop >= 1 else None
        profile = with_law(profile, tau0, tau1, most)
    return profile if rate is None else load_rate(profile, rate)


def load_rate(profile: Profile, rate: float) -> Profile:
    """``profile`` at ``--rate``, or a one-line error naming the option."""
    try:
        return profile.replace(rate=rate)
    except ProfileError as exc:
        fail(f"option --rate: {exc}")


def _render_sweep(console: Console, result: Sweep) -> None:
    table = Table(
        title=f"Sweep over {result.parameter} (T: system time, s; rho: utilisation)",
        title_justify="left",
    )
    table.add_column(result.parameter, justify="right")
    slots = result.parameter == "slots"
    headers = ("budgets", "accuracy", "mean T", "p95 T", "rho", *(("mean batch",) if slots else ()))
    for header in headers:
        table.add_column(header, justify="left" if header == "budgets" else "right")
    for p in result.points:
        if not p.stable:
            table.add_row(f"{p.value:.4g}", Text("unstable"), *[""] * (len(headers) - 1))
            continue
        shown = ", ".join(str(b) for b in (p.budgets or ())[:8])
        more = " ..." if len(p.budgets or ()) > 8 else ""
        table.add_row(
            f"{p.value:.4g}",
            Text(f"({shown}{more})"),
            num(p.accuracy, ".4f"),
            num(p.mean_system_time, ".4f"),
            num(p.p95_system_time, ".3f"),
            num(p.utilization, ".4f"),
            *((num(p.mean_batch, ".3f"),) if slots else ()),
        )
    console.print(
        Text(f"tasks: {', '.join(result.names[:8])}{' ...' if len(result.names) > 8 else ''}")
    )
    console.print(table)
    if result.parameter == "rate" and math.isfinite(result.saturation_rate):
        console.print(
            Text(f"zero budgets are unstable from rate {result.saturation_rate:.4g}/s on")
        )
    elif result.parameter == "rate":
        console.print(Text("zero budgets are stable at every rate (every t0 is 0)"))
    elif slots:
        console.print(Text("rho: the load as a fraction of the slots' capacity C(B)"))
