"""``thinkq frontier``: the accuracy-latency frontier over alpha, as a table, JSON or plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thinkq.cli import _slo
from thinkq.cli._app import app, dump, fail, load, num, progress, wrote
from thinkq.cli._options import (
    AlphaOption,
    JsonOption,
    MaxTokensOption,
    ProfileArgument,
    RateOption,
    slo_option,
)
from thinkq.errors import ThinkqError
from thinkq.paper import figures
from thinkq.profile import Profile
from thinkq.slo import SloResult
from thinkq.slo.evaluate import TimesFunction
from thinkq.slo.figure import draw_frontier
from thinkq.slo.frontier import DEFAULT_POINTS, UTILISATION_STOP, Frontier, FrontierPoint, Tracer
from thinkq.slo.frontier import frontier as trace
from thinkq.slo.times import DEFAULT_QUERIES, tails

__all__ = ["frontier_command"]

#: The most points a trace takes (each is a solve and a percentile).
MAX_POINTS = 1000
#: Profiles with this many task types (or a batched server) trace under a progress bar.
PROGRESS_MIN_TASKS = 1000
#: Why a trace ends, in words.
STOPS = {
    "saturated": "every type with queries is at l_max",
    "accuracy": "the accuracy is within 1e-4 of its value at l_max",
    "utilisation": f"the utilisation reaches {UTILISATION_STOP:g} (the load nears instability)",
    "alpha": "alpha reaches 1e300",
}


# long: the signature declares its ten options (Typer)
@app.command("frontier")
def frontier_command(
    profile_path: ProfileArgument = None,
    points: Annotated[
        int, typer.Option("--points", help="Points on the trace.", min=2, max=MAX_POINTS)
    ] = DEFAULT_POINTS,
    slo: Annotated[
        list[str] | None,
        slo_option("marked, with its budgets."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the frontier (PNG or SVG file).")
    ] = None,
    queries: Annotated[
        int,
        typer.Option("--queries", help="Simulated queries per point (batched server).", min=1000),
    ] = DEFAULT_QUERIES,
    seed: Annotated[int, typer.Option("--seed", help="Seed of those simulations.", min=0)] = 0,
    rate: RateOption = None,
    alpha: AlphaOption = None,
    max_tokens: MaxTokensOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accuracy against mean and p95 system time as alpha grows, the profile's alpha
    (and any --slo) marked."""
    profile = load(profile_path, rate=rate, alpha=alpha, max_tokens=max_tokens)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        fail(f"option --plot: {plot}: use a .png or .svg file name")
    times = tails(queries=queries, seed=seed)
    constrained = _slo.solve(profile, slo, queries=queries, seed=seed) if slo else None
    slow = profile.batched is not None or profile.size >= PROGRESS_MIN_TASKS
    try:
        with progress("tracing the frontier", slow) as update:
            result = trace(profile, points=points, times=times, progress=update)
    except (ValueError, ThinkqError) as exc:
        fail(str(exc))
    marked = _slo_point(profile, constrained, result, times)
    if plot is not None:
        try:
            figure = draw_frontier(result, constrained, marked)
            fmt = plot.suffix[1:].lower()
            drawn = figures.save(figure, plot.with_suffix(""), formats=(fmt,))
        except OSError as exc:
            fail(f"option --plot: {plot}: {exc.strerror or exc}")
        wrote(drawn)
    if as_json:
        dump(_json(result, constrained, marked, queries, seed), "frontier")
    else:
        _render(Console(), result, constrained, marked)


def _slo_point(
    profile: Profile, constrained: SloResult | None, result: Frontier, times: TimesFunction
) -> FrontierPoint | None:
    """The SLO's budgets as a point of the frontier (its mean and percentile)."""
    if constrained is None:
        return None
    return Tracer(profile, times, result.percentile).point(constrained.alpha, constrained.budgets)


def _json(
    result: Frontier,
    constrained: SloResult | None,
    marked: FrontierPoint | None,
    queries: int,
    seed: int,
) -> dict[str, Any]:
    data = result.to_dict()
    if result.percentile_method == "simulation":
        data |= {"queries": queries, "seed": seed}
    if constrained is not None and marked is not None:
        data["slo"] = constrained.to_dict() | {"point": marked.to_dict(result.percentile)}
    return data


def _row(table: Table, point: FrontierPoint, note: str) -> None:
    shown = ", ".join(str(b) for b in point.budgets[:8])
    more = " ..." if len(point.budgets) > 8 else ""
    table.add_row(
        f"{point.alpha:.4g}",
        num(point.accuracy, ".4f"),
        num(point.mean_system_time, ".3f"),
        num(point.percentile_time, ".3f"),
        num(point.utilization, ".3f"),
        Text(f"({shown}{more})"),
        Text(note),
    )


def _render(
    console: Console,
    result: Frontier,
    constrained: SloResult | None,
    marked: FrontierPoint | None,
) -> None:
    label = f"p{result.percentile:g}"
    table = Table(
        title=f"Accuracy-latency frontier over alpha (T: system time, s; {label} by "
        f"{result.percentile_method})",
        title_justify="left",
    )
    for header in ("alpha", "accuracy", "mean T", f"{label} T", "rho"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("budgets")
    table.add_column("")
    rows = [(p, "") for p in result.points] + [(result.operating_point, "profile's alpha")]
    if constrained is not None and marked is not None:
        rows.append((marked, "SLO: " + ", ".join(str(o) for o in constrained.objectives)))
    for point, note in sorted(rows, key=lambda row: row[0].alpha):
        _row(table, point, note)
    names = ", ".join(result.names[:8]) + (" ..." if len(result.names) > 8 else "")
    console.print(Text(f"tasks: {names}"))
    console.print(table)
    console.print(Text(f"the trace ends where {STOPS[result.stop]}"))
