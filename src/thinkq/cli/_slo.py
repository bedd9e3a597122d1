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
from thinkq.errors import SloError
from thinkq.profile import Profile
from thinkq.slo import Objective, SloResult, parse_objectives, solve_slo
from thinkq.slo.evaluate import resolve
from thinkq.solve import SolveResult

__all__ = ["exclusive", "json", "objectives", "render", "solve"]


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


def json(result: SolveResult, constrained: SloResult | None) -> dict[str, Any]:
    """``thinkq solve --json``'s object: the result, its percentiles and the ``slo``."""
    data = result.to_dict()
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
