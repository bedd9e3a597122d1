"""The two phases of ``thinkq profile``, run against the server, and their summaries.

:func:`measure` checks the server (it answers, lists the model, tokenizes the end
texts and renders the template), then runs the accuracy phase
(:func:`thinkq.measure.runner.run`) and, with ``--slots``, the server phase
(:func:`thinkq.measure.levels.run_levels`) and its prompt probe
(:func:`thinkq.measure.prompt_probe.run_probe`), each with its progress bar. A server
that answered the checks and then cannot be reached raises :class:`ServerStoppedError`.
:func:`summary` and :func:`level_summary` are the tables printed after the run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rich.table import Table

from thinkq.cli._app import fail, progress
from thinkq.errors import DatasetError, RecordError, ServerError, ServerUnreachableError
from thinkq.measure.datasets import DATASETS, load_dataset
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generator
from thinkq.measure.items import Item
from thinkq.measure.level_plan import LevelQuery
from thinkq.measure.levels import run_levels
from thinkq.measure.prompt_probe import Probed, run_probe
from thinkq.measure.runner import Progress, Query, Tally, run
from thinkq.measure.server import Server
from thinkq.measure.settings import RunSettings
from thinkq.records import RecordSet, read_records

__all__ = [
    "Measured",
    "Phase",
    "ServerStoppedError",
    "items_of",
    "level_summary",
    "measure",
    "option_message",
    "summary",
]


class ServerStoppedError(Exception):
    """The server passed the checks before the run, then could no longer be reached."""

    def __init__(self, cause: ServerUnreachableError) -> None:
        super().__init__(str(cause).partition(": ")[2] or str(cause))


@dataclass(frozen=True)
class Phase:
    """One phase to run: its queries, records file and settings (``slots`` for the server)."""

    queries: list[Query] | list[LevelQuery]
    output: Path
    settings: RunSettings
    slots: int | None = None


def items_of(
    names: str, *, data_dir: Path | None, samples: int, seed: int, bbh_tasks: str | None
) -> list[Item]:
    """The items of the ``--dataset`` names (errors exit 2, naming the option)."""
    items: list[Item] = []
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        fail("option --dataset: give at least one dataset")
    for name in dict.fromkeys(chosen):
        if name not in DATASETS:
            fail(f"option --dataset: unknown dataset {name!r} (one of {', '.join(DATASETS)})")
        subset = [t.strip() for t in bbh_tasks.split(",")] if bbh_tasks and name == "bbh" else None
        try:
            items += load_dataset(name, data_dir=data_dir, n=samples, seed=seed, subset=subset)
        except DatasetError as exc:
            fail(f"option --dataset: {exc}")
    return items


def option_message(exc: ServerError) -> str:
    """The error's message with the option at fault named (``option --model: ...``)."""
    names = {"base_url": "--base-url", "model": "--model", "template": "--template",
             "suppress_ids": "--suppress-ids", "api_key": "--api-key-env",
             "tokenizer": "--tokenizer"}  # fmt: skip
    message = str(exc)
    if exc.field in names:
        field, _, rest = message.partition(": ")
        message = f"option {names[exc.field]}: {rest or field}"
    return message


async def _preflight(generator: Generator, server: Server) -> None:
    """Fail before writing anything: the server answers, lists the model, and (force
    mode) tokenizes the end texts and renders the template."""
    await server.check_model()
    await generator.prepare()
    if isinstance(generator, Forcer):
        await generator.render([{"role": "user", "content": "2 + 2 = ?"}])


class Measured(NamedTuple):
    """The tally of each phase, and the prompt probe's (``None`` without ``--slots`` > 1)."""

    tallies: list[Tally]
    probe: Probed | None = None


async def measure(
    generator: Generator, server: Server, phases: list[Phase], *, retries: int
) -> Measured:
    """Check the server, then run each phase in order (the server phase with its prompt
    probe); the tally of each."""
    tallies, probe = [], None
    async with server:
        await _preflight(generator, server)
        try:
            for phase in phases:
                label = "measuring" if phase.slots is None else "measuring the server"
                with progress(label, True) as update:
                    tallies.append(await _run(generator, server, phase, retries, update))
                if (phase.slots or 0) > 1 and isinstance(generator, Forcer):  # batching
                    with progress("probing new prompts", True) as update:
                        queries = [q for q in phase.queries if isinstance(q, LevelQuery)]
                        probe = await run_probe(
                            generator, queries, phase.output, retries=retries, progress=update
                        )
        except ServerUnreachableError as exc:  # it answered the checks: it died
            raise ServerStoppedError(exc) from exc
    return Measured(tallies, probe)


async def _run(
    generator: Generator, server: Server, phase: Phase, retries: int, progress_of: Progress | None
) -> Tally:
    settings = phase.settings
    if phase.slots is None:
        return await run(
            generator, [q for q in phase.queries if isinstance(q, Query)], phase.output,
            model=server.model, concurrency=settings.concurrency, seed=settings.seed,
            retries=retries, progress=progress_of, settings=settings,
        )  # fmt: skip
    return await run_levels(
        generator, server, [q for q in phase.queries if isinstance(q, LevelQuery)],
        phase.output, slots=phase.slots, seed=settings.seed, retries=retries,
        progress=progress_of, settings=settings,
    )  # fmt: skip


def _title(out: Path, tally: Tally) -> str:
    return f"{out}: {tally.answered} answered now, {tally.skipped} resumed, {tally.failed} failed"


def _read(out: Path) -> RecordSet:
    """The records of ``out``; none where every query failed (or none was written)."""
    try:
        return read_records([out])
    except RecordError:
        return RecordSet((), (), (), (), (str(out),))


def summary(out: Path, tally: Tally) -> Table:
    """Accuracy and mean latency per task and budget of the accuracy phase's records."""
    table = Table(title=_title(out, tally), title_justify="left")
    for column in ("task", "budget", "n", "accuracy", "mean latency (s)"):
        table.add_column(column, justify="left" if column == "task" else "right")
    cells: dict[tuple[str, int], list[tuple[bool, float]]] = defaultdict(list)
    for record in _read(out).records:
        cells[(record.task, record.budget)].append((record.correct, record.latency_s))
    for (task, budget), rows in sorted(cells.items()):
        accuracy = sum(c for c, _ in rows) / len(rows)
        latency = sum(t for _, t in rows) / len(rows)
        table.add_row(task, str(budget), str(len(rows)), f"{accuracy:.3f}", f"{latency:.3f}")
    return table


def level_summary(out: Path, tally: Tally) -> Table:
    """Per concurrency level: queries, mean batch seen (client, server) and step time."""
    table = Table(title=_title(out, tally), title_justify="left")
    for column in ("concurrency", "n", "batch", "batch (/slots)", "step (ms)", "tokens/s"):
        table.add_column(column, justify="right")
    levels: dict[int, list[tuple[float, float | None, float | None]]] = defaultdict(list)
    records = _read(out)
    if records.prompts:
        table.caption = _probe_caption(records)
    for r in records.server:
        levels[r.concurrency].append((r.batch, r.batch_slots, r.step_s))
    for n, rows in sorted(levels.items()):
        batch = sum(b for b, _, _ in rows) / len(rows)
        seen = [s for _, s, _ in rows if s is not None]
        steps = [s for _, _, s in rows if s is not None]
        step = sum(steps) / len(steps) if steps else None
        table.add_row(
            str(n), str(len(rows)), f"{batch:.2f}",
            f"{sum(seen) / len(seen):.2f}" if seen else "-",
            f"{step * 1e3:.1f}" if step else "-",
            f"{batch / step:.0f}" if step else "-",
        )  # fmt: skip
    return table


def _probe_caption(records: RecordSet) -> str:
    """The prompt probe in one line: mean new and held prompt (ms and tokens)."""
    probes = records.prompts

    def mean(values: list[float | None]) -> str:
        given = [v for v in values if v is not None]
        return f"{sum(given) / len(given):.0f}" if given else "-"

    return (
        f"prompt probe: {len(probes)} items; a new prompt {mean([r.new_ms for r in probes])} ms "
        f"({mean([r.new_n for r in probes])} tokens), held {mean([r.held_ms for r in probes])} "
        f"ms ({mean([r.held_n for r in probes])} tokens)"
    )
