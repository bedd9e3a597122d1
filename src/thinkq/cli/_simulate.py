"""``thinkq simulate``: the queue event by event at given budgets, beside the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thinkq.batching.server import UNLIMITED_SLOTS
from thinkq.cli._app import app, draw_seed, dump, fail, grid, load, num, progress
from thinkq.cli._options import (
    AlphaOption,
    JsonOption,
    MaxTokensOption,
    ProfileArgument,
    RateOption,
)
from thinkq.profile import Profile
from thinkq.simulate import ServerStatistics, Simulation, simulate
from thinkq.solve import solve

__all__ = ["simulate_command"]

#: Runs with more queries than this show a progress bar on stderr.
PROGRESS_MIN_QUERIES = 5_000_000


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
    """Simulate the server at given budgets and compare with the model.

    The FIFO M/G/1 server against P-K, or, for a profile whose server table has
    several slots, the batched server event by event against the batched model.
    """
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
    ours = "P-K" if profile.batched is None else "model"  # the batched law is not P-K's
    if len(run.tasks) <= 50:
        table = Table(
            title=f"Per task: simulated T and accuracy, against {ours} T and p_k (eq. 2)",
            title_justify="left",
        )
        headers = ("task", "budget", "queries", "T (s)", f"{ours} T", "p95 T", "acc.", "p_k")
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
        f"{ours} {run.analytic_mean_system_time:.4f}",
        "mean waiting time (s)": f"{run.mean_waiting_time:.4f}  "
        f"{ours} {run.analytic_mean_waiting_time:.4f}",
        "system time p50 / p95 / p99 (s)": f"{run.p50_system_time:.3f} / "
        f"{run.p95_system_time:.3f} / {run.p99_system_time:.3f}",
        "utilisation": f"{run.utilization:.4f}  (analytic {run.analytic_utilization:.4f})",
        "accuracy": f"{run.accuracy:.4f}  (analytic {run.analytic_accuracy:.4f})",
        "J realised": f"{run.objective:.4f}  (analytic {run.analytic_objective:.4f})",
    }
    console.print(grid(f"Summary ({run.ci_level:.0%} intervals by batch means)", rows))
    if run.server is not None:
        measured = profile.server
        law = f"tau0 + tau1 n = {run.server.tau0:g} + {run.server.tau1:g} n"
        if measured is not None and measured.steps:
            law = measured.law
        console.print(grid("Server", _server_rows(run.server, law)))


def _server_rows(server: ServerStatistics, law: str) -> dict[str, str]:
    slots = "unlimited" if server.slots >= UNLIMITED_SLOTS else f"{server.slots:,}"
    return {
        "slots": slots,
        "step time (s)": law,
        "mean batch (in service)": f"{server.mean_batch:.4f}  "
        f"(model {server.analytic_mean_batch:.4f})",
        "step time while busy (s)": f"{server.step_time:.6g}  "
        f"(model {server.analytic_step_time:.6g})",
    }
