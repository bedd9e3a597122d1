"""``thinkq solve --uncertainty``: the fit's bootstrap replicates solved, and their table.

:func:`uncertainty` reads the replicates beside a fitted profile (``NAME.fit.json``) and
solves each; :func:`render_uncertainty` prints the budget and J intervals. Errors exit
with code 2, naming ``--uncertainty``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from thinkq.cli._app import fail, grid, progress
from thinkq.errors import ThinkqError
from thinkq.fit import Propagation, propagate
from thinkq.fit.files import read_replicates, report_path
from thinkq.profile import Profile
from thinkq.solve import SolveResult

__all__ = ["render_uncertainty", "uncertainty"]


def uncertainty(
    profile_path: Path | None, profile: Profile, point: SolveResult, count: int, **options: Any
) -> Propagation:
    """``thinkq solve --uncertainty``: solve the fit's replicates (errors exit 2)."""
    if profile_path is None:
        fail("option --uncertainty: give the PROFILE that thinkq fit wrote (it reads its report)")
    try:
        replicates = read_replicates(profile, profile_path)
    except ValueError as exc:
        fail(f"option --uncertainty: {exc}")
    if count > replicates.count:
        fail(
            f"option --uncertainty: {report_path(profile_path)} holds {replicates.count} "
            f"replicates, {count} were asked for"
        )
    try:
        with progress("solving replicates", count * profile.size >= 20_000) as update:
            return propagate(
                profile, replicates, count=count, point=point, progress=update, **options
            )
    except ThinkqError as exc:
        fail(f"option --uncertainty: {exc}")


def render_uncertainty(console: Console, spread: Propagation) -> None:
    """The budget and J intervals as a table and a summary."""
    level = f"{spread.level:.0%}"
    table = Table(
        title=f"Uncertainty of the budgets ({spread.replicates} bootstrap replicates of the "
        f"fit, {level} intervals)",
        title_justify="left",
    )
    table.add_column("task", no_wrap=True)
    for header in ("budget", "interval", "median", "zero in"):
        table.add_column(header, justify="right", no_wrap=True)
    for k, (name, (low, high)) in enumerate(
        zip(spread.names, spread.budget_intervals(), strict=True)
    ):
        column = spread.budgets[:, k]
        table.add_row(
            Text(name),
            str(int(spread.point.budgets[k])),
            f"[{low:.0f}, {high:.0f}]",
            f"{np.median(column):.0f}",
            f"{np.mean(column == 0):.0%}",
        )
    low, high = spread.interval(spread.objective)
    ship_low, ship_high = spread.interval(spread.shipped)
    regret = spread.regret
    rows = {
        "J at the point budgets": f"{spread.point.objective:.6f}",
        f"optimal J, {level} interval": f"[{low:.6f}, {high:.6f}]",
        f"J of the point budgets, {level}": f"[{ship_low:.6f}, {ship_high:.6f}]",
        "regret of the point budgets": f"mean {np.mean(regret):.3g}, "
        f"{spread.level:.0%} quantile {np.quantile(regret, spread.level):.3g}",
        "replicates left out": f"{spread.failed} (unstable at this rate)",
    }
    console.print(Group(table, grid("Uncertainty of J", rows)))
