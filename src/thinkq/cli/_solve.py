"""``thinkq solve``: the optimal budgets, as a table or one JSON object.

A solver that stops before reaching its tolerance prints the result, then a
``warning:`` line on stderr, and exits with code 1. ``--json`` writes exactly one JSON
object on stdout (:meth:`thinkq.SolveResult.to_dict`, non-finite numbers as ``null``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thinkq import model
from thinkq.batching.server import UNLIMITED_SLOTS
from thinkq.cli import _fit, _slo
from thinkq.cli._app import OPTIONS, app, dump, fail, grid, load, num
from thinkq.cli._options import slo_option
from thinkq.profile import Profile
from thinkq.solve import DEFAULT_TOL, SolveResult, solve

__all__ = ["IntegerChoice", "MethodChoice", "solve_command"]

#: Above this many task types the solve runs under a spinner on stderr.
SPINNER_MIN_TASKS = 10_000
#: Profile files larger than this load under a spinner on stderr.
LOADING_SPINNER_BYTES = 1 << 20
#: Above this many task types the table is a summary plus the largest budgets.
FULL_TABLE_MAX_TASKS = 50
#: How many of the largest budgets the summary form lists.
LARGEST_SHOWN = 20


class MethodChoice(StrEnum):
    """Values of ``--method`` (the ``method`` argument of :func:`thinkq.solve`)."""

    auto = "auto"
    newton = "newton"
    fixed_point = "fixed-point"
    gradient = "gradient"


class IntegerChoice(StrEnum):
    """Values of ``--integer`` (the ``integer`` argument of :func:`thinkq.solve`)."""

    best = "best"
    round = "round"


def _solve(profile: Profile, **options: Any) -> SolveResult:
    try:
        return solve(profile, **options)
    except ValueError as exc:  # solve() names the bad argument: "max_iter: ..."
        name, colon, rest = str(exc).partition(":")
        option = OPTIONS.get(name) or {"method": "--method"}.get(name)
        fail(f"option {option}:{rest}" if colon and option else str(exc))


def _loading(path: Path | None) -> AbstractContextManager[Any]:
    """A spinner on stderr while a large profile file (over a megabyte) loads."""
    try:
        large = path is not None and path.stat().st_size > LOADING_SPINNER_BYTES
    except OSError:  # a missing file: load() reports it
        large = False
    if not large:
        return nullcontext()
    return Console(stderr=True).status(f"Loading {path}...")


def _status(profile: Profile) -> AbstractContextManager[Any]:
    if profile.size < SPINNER_MIN_TASKS:
        return nullcontext()
    return Console(stderr=True).status(f"Solving for {profile.size:,} task types...")


# long: the signature declares its 11 options (Typer).
@app.command("solve")
def solve_command(
    profile_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="PROFILE",
            help="Profile file (.toml or .json). Default: the paper's Table I.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Override the arrival rate lambda (1/s).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Override alpha (weight of accuracy).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Override l_max (tokens).")
    ] = None,
    method: Annotated[
        MethodChoice, typer.Option("--method", help="Continuous solver.")
    ] = MethodChoice.auto,
    integer: Annotated[
        IntegerChoice,
        typer.Option("--integer", help="best: floor/ceil search (39); round: (40)."),
    ] = IntegerChoice.best,
    tol: Annotated[
        float, typer.Option("--tol", help="Tolerance on the KKT residual (tokens).")
    ] = DEFAULT_TOL,
    max_iter: Annotated[
        int | None,
        typer.Option("--max-iter", help="Iteration limit (default: per method).", min=1),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object.")
    ] = False,
    uncertainty: Annotated[
        int | None,
        typer.Option(
            "--uncertainty",
            metavar="REPLICATES",
            help="Also solve this many bootstrap replicates of the fit (see thinkq fit).",
            min=1,
        ),
    ] = None,
    slo: Annotated[
        list[str] | None,
        slo_option("the most accurate budgets that meet them all, in place of alpha."),
    ] = None,
) -> None:
    """Compute the optimal thinking-token budget of every task type."""
    with _loading(profile_path):
        profile = load(profile_path, rate=rate, alpha=alpha, max_tokens=max_tokens)
    options: dict[str, Any] = {"method": method.value, "integer": integer.value, "tol": tol}
    constrained = None
    with _status(profile):
        if slo:
            _slo.exclusive(alpha=alpha, uncertainty=uncertainty)
            constrained = _slo.solve(profile, slo, max_iter=max_iter, **options)
            result = constrained.solution
        else:
            result = _solve(profile, max_iter=max_iter, **options)
        data = _slo.json(result, constrained) if as_json else None
    spread = None
    if uncertainty is not None:  # the fit's bootstrap replicates, solved the same way
        spread = _fit.uncertainty(
            profile_path,
            profile,
            result,
            uncertainty,
            method=method.value,
            tol=tol,
            integer=integer.value,
        )
    if data is not None:
        dump(data | ({} if spread is None else {"uncertainty": spread.to_dict()}), "solve")
    else:
        _render(Console(), result)
        if constrained is not None:
            _slo.render(Console(), constrained)
        if spread is not None:
            _fit.render_uncertainty(Console(), spread)
    c = result.continuous
    if not c.converged:
        sys.stderr.write(
            f"warning: the {c.method} solver did not converge ({c.message}): KKT residual "
            f"{c.kkt_residual:.3g} tokens > tolerance {tol:g} after {c.iterations} iterations\n"
        )
        raise typer.Exit(1)


# --------------------------------------------------------------------------- output


def _task_table(result: SolveResult, rows: Sequence[int], title: str) -> Table:
    p = result.profile
    accuracy = model.accuracy(p, result.budgets)
    service = model.service_time(p, result.budgets)
    table = Table(title=title, title_justify="left")
    table.add_column("task", no_wrap=True)
    for header in ("share", "budget", "continuous", "accuracy", "service (s)"):
        table.add_column(header, justify="right", no_wrap=True)
    for k in rows:
        table.add_row(
            Text(p.names[k]),
            f"{p.share[k]:.4g}",
            str(int(result.budgets[k])),
            f"{result.continuous.budgets[k]:.2f}",
            f"{accuracy[k]:.4f}",
            f"{service[k]:.4f}",
        )
    return table


def _budget_summary(result: SolveResult) -> Table:
    budgets = result.budgets
    l_max = result.profile.max_tokens
    at_zero = int(np.count_nonzero(budgets == 0))
    at_max = int(np.count_nonzero(budgets == l_max)) if l_max > 0 else 0
    rows = {
        "task types (N)": f"{budgets.size:,}",
        "at zero": f"{at_zero:,}",
        f"at l_max = {l_max}": f"{at_max:,}",
        "in between": f"{budgets.size - at_zero - at_max:,}",
        "total budget (tokens)": f"{int(budgets.sum()):,}",
        "mean budget per type": f"{float(budgets.mean()):.2f}",
        "mean budget per query": f"{float(np.dot(result.profile.share, budgets)):.2f}",
    }
    return grid("Budgets", rows)


def _bound_rows(result: SolveResult) -> dict[str, str]:
    """The P-K certificate's rows (gap bound, Lemmas 2 and 3): n/a on a batched server."""
    c, b = result.continuous, result.continuous.bounds
    if b is None:
        na = "n/a (P-K only)"
        labels = ("gap bound on J", "contraction L_inf (26)", "step bound 2/L_J (38)",
                  "bounds hold on", "rho_bar, rho_max")  # fmt: skip
        return dict.fromkeys(labels, na)
    region = "box [0, l_max]^N" if b.region == "box" else "level set {rho <= rho_bar}"
    return {
        "gap bound on J": num(c.gap_bound, ".3g"),
        "contraction L_inf (26)": num(b.contraction, ".4g"),
        "step bound 2/L_J (38)": f"{num(b.step_bound, '.4g')} (L_J = {num(b.lipschitz, '.4g')})",
        "bounds hold on": region,
        "rho_bar, rho_max": f"{num(b.rho_bar, '.4g')}, {num(b.rho_max, '.4g')}",
    }


def _summary(result: SolveResult) -> Table:
    c = result.continuous
    server = result.profile.batched
    batched = server is not None
    share = "lambda (p + (E[S] - p) / C(B))" if server and server.prompt else "rho / C(B)"
    na = "n/a (P-K only)"
    rows = {
        "mean accuracy": num(result.accuracy, ".4f"),
        f"utilisation ({share if batched else 'rho'})": num(result.utilization, ".4f"),
        "mean waiting time (s)": num(result.mean_waiting_time, ".4f"),
        "mean system time (s)": num(result.mean_system_time, ".4f"),
        f"J at integer budgets ({result.integer})": num(result.objective, ".6f"),
        "J(l*) continuous": num(result.continuous_objective, ".6f"),
        "lower bound (41)": na if batched else num(result.lower_bound, ".6f"),
        "loss bound of integer budgets": na if batched else num(result.loss_bound, ".3g"),
        "solver": f"{c.method}, {c.iterations} iterations, {c.evaluations} evaluations",
        "converged": "yes" if c.converged else f"NO: {c.message}",
        "KKT residual (tokens)": num(c.kkt_residual, ".3g"),
    }
    return grid("Summary", rows | _bound_rows(result))


def _server(result: SolveResult) -> Table | None:
    """The ``[server]`` table's figures at the integer budgets, if the profile has one."""
    f = result.server
    if f is None:
        return None
    slots = f"{f.slots:,}" + (" (unlimited)" if f.slots >= UNLIMITED_SLOTS else "")
    server = result.profile.server
    # with a prompt stage, of the load limit rather than of C(B) (docs/batching.md)
    share = "utilisation (limit)" if server is not None and server.prompt else "utilisation of C(B)"
    rows = {
        "slots (B)": slots,
        "step time law tau(n) (s)": result.profile.server.law
        if result.profile.server
        else f"{f.tau0:g} + {f.tau1:g} n",
        "capacity C(B) (solo-s per s)": num(f.capacity, ".4g"),
        share: num(f.utilization, ".4f"),
        "mean batch (in service)": num(f.mean_batch, ".4f"),
        "step time (s per decode step)": num(f.step_time, ".4g"),
        "slowdown in service": num(f.slowdown, ".4f"),
        "mean wait for a slot (s)": num(f.waiting_time, ".4f"),
    }
    return grid("Server", rows)


def _render(console: Console, result: SolveResult) -> None:
    p = result.profile
    console.print(
        Text(f"profile: {p.source}  (rate {p.rate:g}/s, alpha {p.alpha:g}, l_max {p.max_tokens})")
    )
    if p.size <= FULL_TABLE_MAX_TASKS:
        console.print(_task_table(result, range(p.size), "Optimal budgets"))
    else:
        console.print(_budget_summary(result))
        order = np.lexsort((-result.continuous.budgets, -result.budgets))[:LARGEST_SHOWN]
        rows = [int(k) for k in order]
        console.print(_task_table(result, rows, f"The {len(rows)} largest budgets"))
    console.print(_summary(result))
    server = _server(result)
    if server is not None:
        console.print(server)
