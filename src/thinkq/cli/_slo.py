"""``thinkq solve --slo``: latency objectives on the command line, and their output.

Every problem with an objective (malformed, a percentile outside (0, 100), an unknown
task, an objective that even zero budgets miss) is one ``error: option --slo: ...``
line with exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from thinkq.cli._app import OPTIONS, fail, grid, num
from thinkq.errors import SloError, ThinkqError
from thinkq.profile import Profile
from thinkq.slo import Objective, SloResult, parse_objectives, solve_slo
from thinkq.slo.evaluate import resolve
from thinkq.solve import SolveResult
from thinkq.tails import system_times

__all__ = ["PERCENTILES", "exclusive", "json", "objectives", "render", "solve"]

#: The percentiles of the system time that ``thinkq solve --json`` reports.
PERCENTILES = (50, 95, 99)


def _option_error(message: str) -> str:
    """``slo: ...`` as ``option --slo: ...``; a solver argument as its option."""
    name, colon, rest = message.partition(":")
    if name == "slo":
        return f"option --slo:{rest}"
    option = OPTIONS.get(name) or {"method": "--method"}.get(name)
    return f"option {option}:{rest}" if colon and option else message


def objectives(texts: Sequence[str], profile: Profile) -> tuple[Objective, ...]:
    """The ``--slo`` values parsed and their tasks checked, or a one-line error."""
    try:
        parsed = parse_objectives(texts)
        resolve(parsed, profile)
    except ValueError as exc:
        fail(_option_error(str(exc)))
    return parsed


def solve(profile: Profile, texts: Sequence[str], **options: Any) -> SloResult:
    """:func:`thinkq.slo.solve_slo` with its errors as one-line option errors."""
    parsed = objectives(texts, profile)
    try:
        return solve_slo(profile, parsed, **options)
    except SloError as exc:
        fail(_option_error(str(exc)))
    except ValueError as exc:
        fail(_option_error(str(exc)))


def exclusive(*, alpha: float | None, uncertainty: int | None) -> None:
    """``--slo`` sets alpha itself: ``--alpha`` and ``--uncertainty`` are errors with it."""
    if alpha is not None:
        fail("option --alpha: not with --slo (the objectives set alpha: the shadow price)")
    if uncertainty is not None:
        fail("option --uncertainty: not available with --slo")


def _after(data: dict[str, Any], key: str, extra: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``extra`` inserted right after ``key``."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        out[name] = value
        if name == key:
            out.update(extra)
    return out


def _percentiles(result: SolveResult) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """p50/p95/p99 of the system time at the integer budgets: overall, and per task."""
    names = [f"p{p}_system_time" for p in PERCENTILES]
    try:
        times = system_times(result.profile, result.budgets)
        overall, per_task = times.percentiles(PERCENTILES)
    except (ThinkqError, ValueError, ArithmeticError) as exc:  # e.g. unstable at the budgets
        top: dict[str, Any] = dict.fromkeys(names)
        top |= {"percentile_method": None, "percentile_error": " ".join(str(exc).split())}
        return top, [dict.fromkeys(names) for _ in result.profile.names]
    top = dict(zip(names, overall.tolist(), strict=True))
    top |= {"percentile_method": times.method, "percentile_queries": times.queries}
    return top, [dict(zip(names, row, strict=True)) for row in per_task.tolist()]


def json(result: SolveResult, constrained: SloResult | None) -> dict[str, Any]:
    """``thinkq solve --json``'s object: the result with the p50, p95 and p99 system
    times at the integer budgets (top level and per task; exact on the paper's server,
    simulated on a batched one: ``percentile_method``), and the ``slo`` object."""
    top, per_task = _percentiles(result)
    data = _after(result.to_dict(), "mean_system_time", top)
    data["tasks"] = [
        _after(task, "service_time", extra)
        for task, extra in zip(data["tasks"], per_task, strict=True)
    ]
    if constrained is not None:
        data["slo"] = constrained.to_dict()
    return data


def _price(result: SloResult) -> str:
    price = result.shadow_price
    if price is None:
        return "none: no objective binds (every type with queries at l_max)"
    per_second = 1.0 / price
    return (
        f"alpha* = {price:.10g} s per unit of accuracy "
        f"(+{100 * per_second:.4g} accuracy points per second of mean system time)"
    )


def render(console: Console, result: SloResult) -> None:
    """The objectives, what the budgets achieve, and the shadow price."""
    rows = {
        f"{o} ({o.statistic} {'of ' + o.task if o.task else 'overall'})": (
            f"{num(value, '.4f')} s  {'met' if met else 'MISSED'}"
        )
        for o, value, met in zip(result.objectives, result.achieved, result.met, strict=True)
    }
    rows["shadow price"] = _price(result)
    if result.accuracy_bound is not None:
        rows["best accuracy any budgets reach"] = (
            f"<= {result.accuracy_bound:.6f} (duality bound; these budgets: {result.accuracy:.6f})"
        )
    method = "exact (Lagrangian)" if result.exact else "heuristic (the alpha path)"
    rows["search"] = f"{method}, {result.solves} solves, {result.evaluations} evaluations"
    if result.percentile_method is not None:
        rows["percentiles"] = result.percentile_method
    console.print(grid("Latency objectives (SLO)", rows))
