"""``thinkq profile``'s resume check: the run's settings from its options, and the file's.

:func:`run_settings` collects the options that define a run into
:class:`~thinkq.measure.settings.RunSettings`; :func:`resumed` checks them against the
settings beside an existing records file (an error names the option that differs, exit
code 2) and notes when an older file has none. :func:`server_phase` does the same for
the server phase of ``--slots`` (``NAME.server.jsonl``, whose settings hold the
budgets above 0, ``--server-queries`` as the runs and ``--slots`` as the concurrency).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from thinkq.cli._app import fail
from thinkq.cli._measurement import Phase
from thinkq.measure.items import Item
from thinkq.measure.level_plan import plan_levels
from thinkq.measure.levels import server_records_path
from thinkq.measure.settings import RunSettings, resume, settings_path

__all__ = ["resumed", "run_settings", "server_phase"]

#: The options of the server phase's settings: runs are queries per level, and the
#: concurrency is the most slots.
SERVER_OPTIONS = {"runs": "--server-queries", "concurrency": "--slots"}


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def run_settings(
    *,
    model: str,
    datasets: str,
    samples: int,
    budgets: Sequence[int],
    runs: int,
    seed: int,
    mode: str,
    template: str,
    thinking: str | None,
    budget_field: str,
    bbh_tasks: str | None,
    temperature: float,
    top_p: float,
    concurrency: int,
) -> RunSettings:
    """The settings the options define (a cap field only in cap mode, BBH tasks with BBH)."""
    names = _names(datasets)
    return RunSettings(
        model=model,
        datasets=names,
        samples=samples,
        budgets=tuple(budgets),
        runs=runs,
        seed=seed,
        mode=mode,
        template=template,
        thinking=thinking,
        budget_field=budget_field if mode == "cap" else None,
        bbh_tasks=_names(bbh_tasks) if bbh_tasks and "bbh" in names else None,
        temperature=temperature,
        top_p=top_p,
        concurrency=concurrency,
    )


def resumed(output: Path, wanted: RunSettings, *, extend: bool) -> tuple[RunSettings, str | None]:
    """The settings to run with: ``wanted``, checked against the file's (errors exit 2).

    The note (a warning for after the run) says when an older file has no settings.
    """
    try:
        settings = resume(output, wanted, extend=extend)
    except ValueError as exc:
        fail(str(exc))
    note = None
    if output.is_file() and output.stat().st_size and not settings_path(output).exists():
        note = (
            f"{output} had no run settings beside it (an older thinkq wrote it): its records "
            f"were checked against this run's grid only; {settings_path(output).name} now has them"
        )
    return settings, note


def server_phase(
    items: Sequence[Item],
    wanted: RunSettings,
    output: Path,
    *,
    slots: int,
    per_level: int,
    levels: Sequence[int] | None = None,
) -> Phase:
    """The server phase of ``--slots``: its queries, file and settings (errors exit 2)."""
    out = server_records_path(output)
    positive = tuple(b for b in wanted.budgets if b > 0)
    if not positive:
        fail("option --budgets: the server phase of --slots needs a budget above 0")
    settings = dataclasses.replace(wanted, budgets=positive, runs=per_level, concurrency=slots)
    try:
        settings = resume(out, settings, options=SERVER_OPTIONS)
    except ValueError as exc:
        fail(str(exc))
    queries = plan_levels(
        items, positive, slots=slots, per_level=per_level, seed=wanted.seed, levels=levels
    )
    return Phase(queries, out, settings, slots=slots)
