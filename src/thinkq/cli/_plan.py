"""``thinkq plan``: how many identical replicas carry a rate within latency objectives.

Every problem (a bad ``--rate`` or ``--min-accuracy``, a malformed ``--slo``, an
objective no replica count meets, a plot that cannot be written) is one ``error:``
line with exit code 2; the plot is written atomically, and only after the plan is
complete.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thinkq.cli._app import app, dump, fail, grid, load, num, wrote
from thinkq.cli._options import JsonOption, ProfileArgument, slo_option
from thinkq.errors import SloError
from thinkq.plan import CapacityPlan, plan_capacity
from thinkq.slo.times import DEFAULT_QUERIES

__all__ = ["plan_command", "summary"]

#: The library's argument names -> the options that set them.
_OPTIONS = {
    "rate": "--rate", "min_accuracy": "--min-accuracy", "slo": "--slo", "queries": "--queries",
}  # fmt: skip


def _option_error(message: str) -> str:
    name, colon, rest = message.partition(":")
    option = _OPTIONS.get(name)
    return f"option {option}:{rest}" if colon and option else message


def summary(plan: CapacityPlan) -> str:
    """One line: the answer, the objectives and what one replica carries."""
    slo = ", ".join(str(o) for o in plan.objectives)
    floor = "" if plan.min_accuracy is None else f" with accuracy >= {plan.min_accuracy:g}"
    noun = "replica carries" if plan.replicas == 1 else "replicas carry"
    most = f"at most {plan.max_rate:.4g}/s" if math.isfinite(plan.max_rate) else "any rate"
    return (
        f"{plan.replicas} {noun} {plan.rate:g} queries/s at {slo}{floor}; "
        f"one replica carries {most}"
    )


#: Up to this many task types, the budgets table has a column per type.
_COLUMNS_MAX_TASKS = 8


def _table(plan: CapacityPlan) -> Table:
    table = Table(title="Per replica (requests split at random)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fmt: skip
    headers = ("replicas", "rate/s", "acc.", "alpha*", "util.", "mean s", "p95 s",
               "p99 s", "SLO")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    verdict = {"met": "met", "accuracy": "acc. low", "slo": "missed"}
    for row in plan.rows:
        r = row.replica
        table.add_row(
            str(row.replicas),
            f"{r.rate:.4g}",
            num(r.accuracy, ".4f"),
            num(r.shadow_price, ".4g"),
            num(row.utilization, ".3f"),
            num(row.mean, ".3f"),
            num(row.p95, ".3f"),
            num(row.p99, ".3f"),
            verdict.get(r.reason, "unstable"),
            style="bold green" if row.replicas == plan.replicas else None,
        )
    return table


def _budget_table(plan: CapacityPlan) -> Table:
    table = Table(title="Budgets per replica (tokens)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("replicas", justify="right", no_wrap=True)
    wide = len(plan.names) <= _COLUMNS_MAX_TASKS
    for name in plan.names if wide else ("budgets, in the profile's order",):
        table.add_column(Text(name), justify="right", overflow="fold")
    for row in plan.rows:
        budgets = [str(int(b)) for b in row.replica.budgets]
        cells = budgets if wide else [" ".join(budgets)]
        style = "bold green" if row.replicas == plan.replicas else None
        table.add_row(str(row.replicas), *cells, style=style)
    return table


def _details(plan: CapacityPlan) -> Table:
    answer = plan.answer
    rows: dict[str, str] = {}
    for i, o in enumerate(plan.objectives):
        value = answer.replica.achieved[i]
        lean = None if answer.lean_achieved is None else answer.lean_achieved[i]
        at = "zero budgets" if plan.min_accuracy is None else "the accuracy floor"
        rows[str(o)] = f"{num(value, '.4f')} s at the answer; {num(lean, '.4f')} s at {at}"
    c = plan.capacity
    rows["one replica's capacity"] = (
        f"{num(plan.max_rate, '.6g')} queries/s (accuracy {c.accuracy:.4f}, budgets "
        f"{' '.join(str(int(b)) for b in c.budgets)})"
    )
    search = "exact (Lagrangian)" if plan.exact else "heuristic (the alpha path)"
    rows["SLO search"] = f"{search}, {plan.evaluations} per-replica rates solved"
    if plan.percentile_method is not None:
        rows["percentiles"] = plan.percentile_method
    rows["routing"] = plan.routing
    return grid("Plan", rows)


# long: the signature declares its nine options (Typer)
@app.command("plan")
def plan_command(
    profile_path: ProfileArgument = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Total arrival rate to carry (queries/s).", show_default=False),
    ] = None,
    slo: Annotated[
        list[str] | None,
        slo_option("met by every replica."),
    ] = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option("--min-accuracy", help="Accuracy floor per replica (a fraction 0-1)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw accuracy and the SLO against replicas (PNG/SVG)."),
    ] = None,
    queries: Annotated[
        int,
        typer.Option("--queries", help="Simulated queries per percentile (batched server only)."),
    ] = DEFAULT_QUERIES,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of those simulations (batched server only).", min=0)
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Replicas needed for a rate within an SLO, and one replica's capacity."""
    if rate is None:
        fail("option --rate: give the total arrival rate to plan for (queries/s)")
    if not slo:
        fail("option --slo: give at least one objective (e.g. --slo 'p95<=8s')")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        fail(f"option --plot: {plot}: use a .png or .svg file name")
    if plot is not None and not plot.parent.is_dir():
        fail(f"option --plot: {plot}: no such folder {plot.parent}")
    if min_accuracy is not None and not math.isfinite(min_accuracy):
        fail(f"option --min-accuracy: expected a fraction in [0, 1], got {min_accuracy}")
    profile = load(profile_path, rate=None, alpha=None, max_tokens=None)
    try:
        with Console(stderr=True).status("Planning replicas..."):
            plan = plan_capacity(
                profile, rate, slo, min_accuracy=min_accuracy, queries=queries, seed=seed
            )
    except (SloError, ValueError) as exc:
        fail(_option_error(str(exc)))
    if plot is not None:
        from thinkq.plan.figure import save_plan  # matplotlib: only when drawing

        try:
            wrote([save_plan(plan, plot)])
        except OSError as exc:
            fail(f"option --plot: {plot}: {exc.strerror or exc}")
    if as_json:
        dump(plan.to_dict() | {"summary": summary(plan)}, "plan")
        return
    console = Console()
    console.print(Text(f"profile: {profile.source}"))
    console.print(_table(plan))
    console.print(_budget_table(plan))
    console.print(_details(plan))
    console.print(Text(summary(plan)))
