"""``thinkq simulate``, ``thinkq reproduce`` and ``thinkq sweep``."""

from __future__ import annotations

import json
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

from thinkq.cli._app import app, draw_seed, dump, fail, grid, load, num, progress, wrote
from thinkq.errors import ThinkqError
from thinkq.paper import figures
from thinkq.paper.reproduce import reproduce
from thinkq.paper.sweep import Sweep, sweep
from thinkq.profile import Profile
from thinkq.simulate import Simulation, simulate
from thinkq.solve import solve

__all__ = ["reproduce_command", "simulate_command", "sweep_command"]

#: The most values a sweep takes (each is a solve and a simulation).
MAX_POINTS = 10_000
#: Runs with more queries than this show a progress bar on stderr.
PROGRESS_MIN_QUERIES = 5_000_000

ProfileArgument = Annotated[
    Path | None,
    typer.Argument(
        metavar="PROFILE",
        help="Profile file (.toml or .json). Default: the paper's Table I.",
        show_default=False,
    ),
]
RateOption = Annotated[
    float | None, typer.Option("--rate", help="Override the arrival rate lambda (1/s).")
]
AlphaOption = Annotated[
    float | None, typer.Option("--alpha", help="Override alpha (weight of accuracy).")
]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", help="Override l_max (tokens).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


# --------------------------------------------------------------------------- simulate


def _budgets(spec: str, profile: Profile) -> np.ndarray:
    """``optimal``, ``uniform:N`` or a JSON file (``solve --json`` output or name -> budget)."""
    if spec == "optimal":
        return solve(profile).budgets.astype(np.float64)
    if spec.startswith("uniform:"):
        value = spec.removeprefix("uniform:")
        try:
            budget = float(value)
        except ValueError:
            fail(f"option --budgets: 'uniform:N' needs a number of tokens, got {value!r}")
        if not (np.isfinite(budget) and 0 <= budget <= profile.max_tokens):
            fail(f"option --budgets: uniform budget must be in [0, {profile.max_tokens}]")
        return np.full(profile.size, budget)
    return _budgets_file(Path(spec), profile)


def _budgets_file(path: Path, profile: Profile) -> np.ndarray:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        fail(f"option --budgets: {path}: no such file (or use optimal, uniform:N)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"option --budgets: {path}: not a JSON budgets file: {exc}")
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        data = {t.get("name"): t.get("budget") for t in data["tasks"] if isinstance(t, dict)}
    if not isinstance(data, dict):
        fail(f"option --budgets: {path}: expected an object of task name -> budget")
    missing = [name for name in profile.names if name not in data]
    unknown = [name for name in data if name not in profile.names]
    if missing or unknown:
        which = f"no budget for task '{missing[0]}'" if missing else f"unknown task '{unknown[0]}'"
        fail(f"option --budgets: {path}: {which}")
    budgets = []
    for name in profile.names:
        value = data[name]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (np.isfinite(value) and 0 <= value <= profile.max_tokens):
            fail(f"option --budgets: {path}: task '{name}': budget must be a number in [0, l_max]")
        budgets.append(float(value))
    return np.array(budgets)


@app.command("simulate")
def simulate_command(
    profile_path: ProfileArgument = None,
    budgets: Annotated[
        str,
        typer.Option("--budgets", help="optimal, uniform:N (tokens), or a JSON budgets file."),
    ] = "optimal",
    queries: Annotated[
        int, typer.Option("--queries", help="Measured queries (after warm-up).", min=20)
    ] = 10_000,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed (default: drawn, and printed).", min=0),
    ] = None,
    rate: RateOption = None,
    alpha: AlphaOption = None,
    max_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
) -> None:
    """Simulate the FIFO M/G/1 server at given budgets and compare with P-K."""
    profile = load(profile_path, rate=rate, alpha=alpha, max_tokens=max_tokens)
    l = _budgets(budgets, profile)
    try:
        with progress("simulating", queries >= PROGRESS_MIN_QUERIES) as update:
            run = simulate(profile, l, queries=queries, seed=draw_seed(seed), progress=update)
    except ValueError as exc:
        name, colon, rest = str(exc).partition(":")
        fail(f"option --{name}:{rest}" if colon and name in ("budgets", "queries") else str(exc))
    if as_json:
        data = run.to_dict()
        for task in data["tasks"]:  # a budget is an integer wherever it is one
            if float(task["budget"]).is_integer():
                task["budget"] = int(task["budget"])
        dump(data, "simulate")
    else:
        _render_simulation(Console(), profile, run)


def _render_simulation(console: Console, profile: Profile, run: Simulation) -> None:
    console.print(Text(f"profile: {profile.source}  ({run.queries:,} queries, seed {run.seed})"))
    if len(run.tasks) <= 50:
        table = Table(
            title="Per task: simulated T and accuracy, against P-K T and p_k (eq. 2)",
            title_justify="left",
        )
        headers = ("task", "budget", "queries", "T (s)", "P-K T", "p95 T", "acc.", "p_k")
        for header in headers:
            table.add_column(header, justify="left" if header == "task" else "right")
        for t in run.tasks:
            table.add_row(
                Text(t.name),
                f"{t.budget:g}",
                f"{t.queries:,}",
                num(t.mean_system_time, ".4f"),
                num(t.analytic_mean_system_time, ".4f"),
                num(t.p95_system_time, ".3f"),
                f"{t.accuracy:.4f}",
                f"{t.analytic_accuracy:.4f}",
            )
        console.print(table)
    lo, hi = run.mean_system_time_ci
    rows = {
        "mean system time (s)": f"{run.mean_system_time:.4f}  [{lo:.4f}, {hi:.4f}]  "
        f"P-K {run.analytic_mean_system_time:.4f}",
        "mean waiting time (s)": f"{run.mean_waiting_time:.4f}  "
        f"P-K {run.analytic_mean_waiting_time:.4f}",
        "system time p50 / p95 / p99 (s)": f"{run.p50_system_time:.3f} / "
        f"{run.p95_system_time:.3f} / {run.p99_system_time:.3f}",
        "utilisation": f"{run.utilization:.4f}  (analytic {run.analytic_utilization:.4f})",
        "accuracy": f"{run.accuracy:.4f}  (analytic {run.analytic_accuracy:.4f})",
        "J realised": f"{run.objective:.4f}  (analytic {run.analytic_objective:.4f})",
    }
    console.print(grid(f"Summary ({run.ci_level:.0%} intervals by batch means)", rows))


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
    as_json: JsonOption = False,
) -> None:
    """Optimal budgets, accuracy and system time across a range of rate or alpha."""
    profile = load(profile_path, rate=None, alpha=None, max_tokens=None)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        fail(f"option --plot: {plot}: use a .png or .svg file name")
    try:
        with progress("sweeping", True) as update:
            result = sweep(
                profile,
                over=over.value,
                start=start,
                stop=stop,
                points=points,
                queries=queries or None,
                seed=seed,
                progress=update,
            )
    except (ValueError, ThinkqError) as exc:
        name, colon, rest = str(exc).partition(":")
        option = {"start, stop": "--from/--to", "points": "--points", "queries": "--queries"}.get(
            name
        )
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


def _render_sweep(console: Console, result: Sweep) -> None:
    table = Table(
        title=f"Sweep over {result.parameter} (T: system time, s; rho: utilisation)",
        title_justify="left",
    )
    table.add_column(result.parameter, justify="right")
    for header in ("budgets", "accuracy", "mean T", "p95 T", "rho"):
        table.add_column(header, justify="left" if header == "budgets" else "right")
    for p in result.points:
        if not p.stable:
            table.add_row(f"{p.value:.4g}", Text("unstable"), "", "", "", "")
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
