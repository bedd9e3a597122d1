"""The command line: ``thinkq solve`` (parse -> call the API -> render).

Every error a user can cause (a bad profile file, a bad option value, a bad command
line) prints one line ``error: <message>`` on stderr and exits with code 2. A solver
that stops before reaching its tolerance prints the result, then a ``warning:`` line
on stderr, and exits with code 1. ``--json`` writes exactly one JSON object on stdout
(:meth:`thinkq.SolveResult.to_dict`, non-finite numbers as ``null``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, cast

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from thinkq import __version__, model
from thinkq.errors import ProfileError, ThinkqError
from thinkq.profile import Profile, load_profile, paper_profile
from thinkq.solve import DEFAULT_TOL, SolveResult, solve

__all__ = ["app", "main"]

#: Above this many task types the solve runs under a spinner on stderr.
SPINNER_MIN_TASKS = 10_000
#: Above this many task types the table is a summary plus the largest budgets.
FULL_TABLE_MAX_TASKS = 50
#: How many of the largest budgets the summary form lists.
LARGEST_SHOWN = 20
# API argument or profile field -> the option that sets it
_OPTIONS = {
    "rate": "--rate",
    "alpha": "--alpha",
    "max_tokens": "--max-tokens",
    "tol": "--tol",
    "max_iter": "--max-iter",
}


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


# --------------------------------------------------------------------------- errors


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with code 2."""
    sys.stderr.write(f"error: {' '.join(message.splitlines())}\n")
    raise typer.Exit(2)


class _UsageErrorLike(Protocol):
    ctx: typer.Context | None

    def format_message(self) -> str: ...


def _usage_error_type() -> type[Exception]:
    # click's UsageError is the base of every error Typer raises for a bad command line
    # (bad option value, unknown option, missing command). Typer vendors click and
    # exports only the subclass BadParameter, so the base is found from there.
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "UsageError" and issubclass(cls, Exception):
            return cls
    return typer.BadParameter  # pragma: no cover


_UsageError = _usage_error_type()


class _OneLineErrors(TyperGroup):
    """Typer's command group, with usage errors printed as one ``error:`` line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _UsageError as exc:
            usage = cast(_UsageErrorLike, exc)
            command = usage.ctx.command_path if usage.ctx is not None else "thinkq"
            message = " ".join(usage.format_message().splitlines())
            sys.stderr.write(f"error: {message} (see '{command} --help')\n")
            sys.exit(2)
        except typer.Abort:
            sys.stderr.write("error: aborted\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# --------------------------------------------------------------------------- the app

app = typer.Typer(
    cls=_OneLineErrors,
    help="Queueing-aware reasoning-token budgets for LLM servers (arXiv 2601.10274).",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"thinkq {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def _profile(
    path: Path | None, *, rate: float | None, alpha: float | None, max_tokens: int | None
) -> Profile:
    try:
        profile = paper_profile() if path is None else load_profile(path)
    except ThinkqError as exc:
        _fail(str(exc))
    try:
        return profile.replace(rate=rate, alpha=alpha, max_tokens=max_tokens)
    except ProfileError as exc:
        option = _OPTIONS.get(exc.field or "")
        _fail(f"option {option}: {exc}" if option else str(exc))


def _solve(profile: Profile, **options: Any) -> SolveResult:
    try:
        return solve(profile, **options)
    except ValueError as exc:  # solve() names the bad argument: "max_iter: ..."
        name, colon, rest = str(exc).partition(":")
        option = _OPTIONS.get(name)
        _fail(f"option {option}:{rest}" if colon and option else str(exc))


def _status(profile: Profile) -> AbstractContextManager[Any]:
    if profile.size < SPINNER_MIN_TASKS:
        return nullcontext()
    return Console(stderr=True).status(f"Solving for {profile.size:,} task types...")


@app.command("solve")
def solve_command(
    profile_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="[PROFILE]",
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
) -> None:
    """Compute the optimal thinking-token budget of every task type."""
    profile = _profile(profile_path, rate=rate, alpha=alpha, max_tokens=max_tokens)
    with _status(profile):
        result = _solve(
            profile, method=method.value, integer=integer.value, tol=tol, max_iter=max_iter
        )
        payload = _json(result) if as_json else None
    if payload is not None:
        sys.stdout.write(payload + "\n")
    else:
        _render(Console(), result)
    c = result.continuous
    if not c.converged:
        sys.stderr.write(
            f"warning: the {c.method} solver did not converge ({c.message}): KKT residual "
            f"{c.kkt_residual:.3g} tokens > tolerance {tol:g} after {c.iterations} iterations\n"
        )
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``thinkq`` console script."""
    app(prog_name="thinkq")


# --------------------------------------------------------------------------- output


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json(result: SolveResult) -> str:
    return json.dumps(_finite(result.to_dict()), allow_nan=False)


def _num(value: float | None, spec: str) -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if math.isfinite(value) else str(value)


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
            f"{p.share[k]:.4f}",
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
    return _grid("Budgets", rows)


def _grid(title: str, rows: dict[str, str]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows.items():
        table.add_row(label, Text(value))
    return table


def _summary(result: SolveResult) -> Table:
    c, b = result.continuous, result.continuous.bounds
    region = "box [0, l_max]^N" if b.region == "box" else "level set {rho <= rho_bar}"
    rows = {
        "mean accuracy": _num(result.accuracy, ".4f"),
        "utilisation (rho)": _num(result.utilization, ".4f"),
        "mean waiting time (s)": _num(result.mean_waiting_time, ".4f"),
        "mean system time (s)": _num(result.mean_system_time, ".4f"),
        f"J at integer budgets ({result.integer})": _num(result.objective, ".6f"),
        "J(l*) continuous": _num(result.continuous_objective, ".6f"),
        "lower bound (41)": _num(result.lower_bound, ".6f"),
        "loss bound of integer budgets": _num(result.loss_bound, ".3g"),
        "solver": f"{c.method}, {c.iterations} iterations, {c.evaluations} evaluations",
        "converged": "yes" if c.converged else f"NO: {c.message}",
        "KKT residual (tokens)": _num(c.kkt_residual, ".3g"),
        "gap bound on J": _num(c.gap_bound, ".3g"),
        "contraction L_inf (26)": _num(b.contraction, ".4g"),
        "step bound 2/L_J (38)": f"{_num(b.step_bound, '.4g')} (L_J = {_num(b.lipschitz, '.4g')})",
        "bounds hold on": region,
        "rho_bar, rho_max": f"{_num(b.rho_bar, '.4g')}, {_num(b.rho_max, '.4g')}",
    }
    return _grid("Summary", rows)


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
