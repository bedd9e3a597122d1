"""``thinkq fit``: a profile from measurements (``solve --uncertainty``'s parts are in
:mod:`thinkq.cli._uncertainty`, re-exported here).

Malformed measurement files print one ``error: FILE:LINE: field: problem`` line per
bad line on stderr and exit with code 2, writing nothing; so do records whose thinking
tokens differ from their budget (``--drop-off-budget`` leaves them out instead). Records
left out or counted once (:func:`thinkq.records.check_records`) are ``warning:`` lines,
and so are fit warnings (a flat curve, b on a bound, many outliers); the fit still
succeeds. Records of the server phase (``thinkq profile --slots``) add the server's
step-time law, printed as a third table, and its prompt probe the table's ``prompt``
with each t0 lifted for new prompts (``--no-prompt-stage``: neither).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from thinkq.cli._app import OPTIONS, app, dump, fail, grid, num, progress, wrote
from thinkq.cli._uncertainty import render_uncertainty, uncertainty
from thinkq.errors import ProfileError, RecordError
from thinkq.fit import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    DEFAULT_RATE,
    FitError,
    FitResult,
    ServerFit,
    fit_records,
)
from thinkq.fit.files import write_fit
from thinkq.fit.plots import save_plots
from thinkq.records import read_records

__all__ = ["fit_command", "render_uncertainty", "uncertainty"]  # the last two: _solve


class SharesChoice(StrEnum):
    """Values of ``--shares``."""

    empirical = "empirical"
    uniform = "uniform"


def _records_error(exc: RecordError) -> None:
    for line in str(exc).splitlines():
        sys.stderr.write(f"error: {line}\n")
    raise typer.Exit(2)


# long: the signature declares its 12 options (Typer).
@app.command("fit")
def fit_command(
    records: Annotated[
        list[Path],
        typer.Argument(
            metavar="RECORDS",
            help="Measurements: .jsonl records (one answered query a line) or .csv summaries.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write the profile (.toml or .json) and, beside it, NAME.fit.json.",
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option("--rate", help="Arrival rate lambda of the profile (1/s).")
    ] = DEFAULT_RATE,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Weight of accuracy in the profile.")
    ] = DEFAULT_ALPHA,
    shares: Annotated[
        SharesChoice,
        typer.Option("--shares", help="empirical: task frequencies in the records; uniform."),
    ] = SharesChoice.empirical,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", help="l_max (default: the largest measured budget)."),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Folder for accuracy and latency plots (PNG, SVG)."),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", help="Bootstrap replicates (0: no intervals).", min=0, max=100_000
        ),
    ] = DEFAULT_BOOTSTRAP,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.", min=0)] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the fit report as one JSON object.")
    ] = False,
    drop_off_budget: Annotated[
        bool,
        typer.Option(
            "--drop-off-budget",
            help="Leave out records whose thinking tokens differ from their budget (counted).",
        ),
    ] = False,
    no_prompt_stage: Annotated[
        bool,
        typer.Option(
            "--no-prompt-stage",
            help="No prompt stage: leave out the server prompt and the t0 lift for new prompts.",
        ),
    ] = False,
) -> None:
    """Fit accuracy and latency curves to measurements and write a profile."""
    if output is not None and output.suffix.lower() not in (".toml", ".json"):
        fail(f"option -o: {output}: a profile file ends in .toml or .json")
    if output is not None and not output.parent.is_dir():
        fail(f"option -o: {output}: no such folder {output.parent}")
    if plots is not None and plots.exists() and not plots.is_dir():
        fail(f"option --plots: {plots}: not a folder")
    try:
        record_set = read_records(records)
    except RecordError as exc:
        _records_error(exc)
    tasks = len(record_set.task_names)
    try:
        with progress("bootstrapping", bootstrap * tasks >= 1000) as update:
            result = fit_records(
                record_set,
                rate=rate,
                alpha=alpha,
                max_tokens=max_tokens,
                shares=shares.value,
                bootstrap=bootstrap,
                seed=seed,
                progress=update,
                drop_off_budget=drop_off_budget,
                prompt_stage=not no_prompt_stage,
            )
    except RecordError as exc:
        _records_error(exc)
    except ProfileError as exc:
        option = OPTIONS.get(exc.field or "")
        fail(f"option {option}: {exc}" if option else str(exc))
    except FitError as exc:
        fail(str(exc))
    written: list[Path] = []
    try:
        if plots is not None:
            written += save_plots(result, plots)
        if output is not None:
            written += write_fit(result, output)
    except OSError as exc:
        fail(f"{exc.filename or output}: cannot write: {exc.strerror or exc}")
    if as_json:
        dump(result.to_dict() | {"written": [str(p) for p in written]}, "fit")
    else:
        _render(Console(), result, written)
    wrote(written)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")


# --------------------------------------------------------------------------- output


def _cell(
    value: float, interval: tuple[float, float] | None, spec: str, scale: float = 1.0
) -> Text:
    text = format(value * scale, spec)
    if interval is not None:  # on two lines of its own, so that the tables fit 80 columns
        text += f"\n[{interval[0] * scale:{spec}},\n {interval[1] * scale:{spec}}]"
    return Text(text)


def _fit_cell(statistic: float | None, dof: int, p_value: float | None) -> Text:
    if statistic is None or dof <= 0:
        return Text("n/a")
    return Text(f"{statistic:.1f}/{dof}\np={p_value:.2g}")


def _tables(result: FitResult) -> tuple[Table, Table]:
    level = f"{result.level:.0%} intervals" if result.replicates else "no intervals"
    accuracy = Table(title=f"Accuracy p(l) = A (1 - e^(-b l)) + D  ({level})", title_justify="left")
    latency = Table(
        title=f"Service time t(l) = t0 + c l, c in ms per token  ({level})", title_justify="left"
    )
    accuracy.add_column("task")
    latency.add_column("task")
    for header in ("A", "b (1/token)", "D", "G2/dof"):
        accuracy.add_column(header, justify="right")
    for header in ("t0 (s)", "c (ms)", "sd (s)", "R^2", "outliers", "chi2/dof"):
        latency.add_column(header, justify="right")
    for t in result.tasks:
        a, s, iv = t.accuracy, t.latency, t.intervals
        name = t.name if a.status == "ok" else f"{t.name}\n({a.status})"
        accuracy.add_row(
            Text(name),
            _cell(a.A, iv.get("A"), ".3f"),
            _cell(a.b, iv.get("b"), ".2e"),
            _cell(a.D, iv.get("D"), ".3f"),
            _fit_cell(a.deviance, a.dof, a.p_value),
        )
        sd = iv.get("variance")
        latency.add_row(
            Text(t.name),
            _cell(s.t0, iv.get("t0"), ".4f"),
            _cell(s.c, iv.get("c"), ".3f", scale=1e3),
            _cell(s.variance**0.5, (sd[0] ** 0.5, sd[1] ** 0.5) if sd else None, ".3f"),
            Text(f"{num(s.r_squared, '.3f')}\nmeans\n{num(s.r_squared_means, '.3f')}"),
            f"{s.outliers}",
            _fit_cell(s.chi2, s.dof, s.p_value),
        )
    return accuracy, latency


def _render(console: Console, result: FitResult, written: list[Path]) -> None:
    p = result.profile
    accuracy, latency = _tables(result)
    resampling = sorted({t.data.resampling for t in result.tasks})
    replicates = result.replicates.count if result.replicates else 0
    rows = {
        "measurements": ", ".join(result.files),
        "model": result.model or "(not given)",
        "queries": f"{sum(t.data.queries for t in result.tasks):,} in {p.size} tasks",
        "bootstrap": f"{replicates} replicates ({', '.join(resampling)} resampled), "
        f"seed {result.seed}"
        if replicates
        else "none",
        "profile": f"rate {p.rate:g}/s, alpha {p.alpha:g}, l_max {p.max_tokens} "
        f"(largest measured budget {result.measured_max})",
        "written": ", ".join(str(w) for w in written) or "nothing (use -o FILE.toml)",
    }
    server = [] if result.server is None else [_server_table(result.server)]
    if result.server is not None:
        rows |= _server_rows(result.server)
    if result.prompt is not None:
        rows["prompt"] = result.prompt.text
    console.print(Group(accuracy, latency, *server, grid("Fit", rows)))


def _server_rows(fit: ServerFit) -> dict[str, str]:
    s, iv = fit.server, fit.intervals

    def value(key: str) -> str:
        shown = f"{getattr(s, key) * 1e3:.3f} ms"
        if key not in iv:
            return shown
        low, high = iv[key]
        return f"{shown} [{low * 1e3:.3f}, {high * 1e3:.3f}]"

    held = "n/a (too few levels)" if fit.held_out is None else f"{fit.held_out:.1%}"
    return {
        "server": f"slots {s.slots}, tau0 {value('tau0')}, tau1 {value('tau1')}"
        + ("" if fit.power is None else f"; in force: {fit.law}"),
        "server fit": f"R^2 {num(fit.r_squared, '.3f')} over {fit.data.size} requests, "
        f"worst held-out level {held}",
    }


def _server_table(fit: ServerFit) -> Table:
    """Per concurrency level: the batch seen, the measured and fitted step, held out."""
    table = Table(
        title=f"Step time {fit.law}, {fit.server.slots} slots "
        f"({'linear' if fit.linear else 'NOT linear on these data: the bent law'})",
        title_justify="left",
    )
    headers = ("concurrency", "n", "batch", "/slots", "step (ms)", "fitted", "held out", "slowdown")
    for header in headers:
        table.add_column(header, justify="right")
    for row in fit.levels:
        error = row["held_out_error"]
        table.add_row(
            str(row["concurrency"]), str(row["requests"]), f"{row['batch']:.2f}",
            "-" if row["batch_slots"] is None else f"{row['batch_slots']:.2f}",
            f"{row['step'] * 1e3:.2f}", f"{row['fitted_step'] * 1e3:.2f}",
            "-" if error is None else f"{error:+.1%}",
            f"{row['latency_ratio']:.2f}\n({row['fitted_ratio']:.2f})",
        )  # fmt: skip
    return table
