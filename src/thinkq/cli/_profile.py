"""``thinkq profile``: measure a model served behind an OpenAI-compatible API.

Before anything is written, the server is checked: it must answer, list the model,
and (in force mode) tokenize the end-of-thinking texts and render the template. A
server that is down, a wrong URL or an unknown model gives one ``error:`` line within
seconds, exit code 2 (1 for a server that fails by itself), and no output file. A
server that answered these checks and stops answering during the run is reported as
such (exit code 1), not as a bad ``--base-url``.

During the run every finished query is one line of ``-o``, flushed at once; Ctrl-C
leaves only complete lines, and the same command run again goes on from there (see
:mod:`thinkq.cli._resume` for the settings it checks). A full disk is one ``error:``
line (exit code 1); the finished records stay whole.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thinkq.cli._app import api_key, app, fail, integers, progress, wrote
from thinkq.cli._resume import resumed, run_settings
from thinkq.errors import DatasetError, RecordError, ServerError, ServerUnreachableError
from thinkq.measure.cap import Capper
from thinkq.measure.datasets import DATASETS, load_dataset
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generator, Sampling
from thinkq.measure.items import Item
from thinkq.measure.runner import Query, Tally, plan, run
from thinkq.measure.server import Server
from thinkq.measure.settings import RunSettings
from thinkq.measure.templates import TEMPLATES, THINKING, get_template
from thinkq.measure.tokenizer import LocalTokenizer
from thinkq.records import read_records

__all__ = ["profile_command"]


class _ServerStoppedError(Exception):
    """The server passed the checks before the run, then could no longer be reached."""

    def __init__(self, cause: ServerUnreachableError) -> None:
        super().__init__(str(cause).partition(": ")[2] or str(cause))


class ModeChoice(StrEnum):
    """Values of ``--mode``."""

    force = "force"
    cap = "cap"


def _items(
    names: str, *, data_dir: Path | None, samples: int, seed: int, bbh_tasks: str | None
) -> list[Item]:
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


async def _preflight(generator: Generator, server: Server) -> None:
    """Fail before writing anything: the server answers, lists the model, and (force
    mode) tokenizes the end texts and renders the template."""
    await server.check_model()
    await generator.prepare()
    if isinstance(generator, Forcer):
        await generator.render([{"role": "user", "content": "2 + 2 = ?"}])


def _option(exc: ServerError) -> str:
    names = {"base_url": "--base-url", "model": "--model", "template": "--template",
             "suppress_ids": "--suppress-ids", "api_key": "--api-key-env",
             "tokenizer": "--tokenizer"}  # fmt: skip
    message = str(exc)
    if exc.field in names:
        field, _, rest = message.partition(": ")
        message = f"option {names[exc.field]}: {rest or field}"
    return message


def _summary(out: Path, tally: Tally) -> Table:
    table = Table(
        title=f"{out}: {tally.answered} answered now, {tally.skipped} resumed, "
        f"{tally.failed} failed",
        title_justify="left",
    )
    for column in ("task", "budget", "n", "accuracy", "mean latency (s)"):
        table.add_column(column, justify="left" if column == "task" else "right")
    cells: dict[tuple[str, int], list[tuple[bool, float]]] = defaultdict(list)
    for record in read_records([out]).records:
        cells[(record.task, record.budget)].append((record.correct, record.latency_s))
    for (task, budget), rows in sorted(cells.items()):
        accuracy = sum(c for c, _ in rows) / len(rows)
        latency = sum(t for _, t in rows) / len(rows)
        table.add_row(task, str(budget), str(len(rows)), f"{accuracy:.3f}", f"{latency:.3f}")
    return table


# long: the signature declares its 23 options (Typer); the body checks them one
# by one, then maps each way the run can end to one line and an exit code.
@app.command("profile")
def profile_command(
    base_url: Annotated[
        str, typer.Option("--base-url", help="API root, e.g. http://localhost:8000/v1.")
    ],
    model: Annotated[str, typer.Option("--model", help="Model name as the server lists it.")],
    dataset: Annotated[
        str, typer.Option("--dataset", help=f"Comma-separated: {', '.join(DATASETS)}.")
    ],
    budgets: Annotated[
        str, typer.Option("--budgets", help="Thinking budgets (tokens), e.g. 0,32,64,128.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Records file (.jsonl); resumed if it exists.")
    ],
    samples: Annotated[int, typer.Option("--samples", min=1, help="Items per dataset.")] = 250,
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=1000, help="Runs per item and budget.")
    ] = 3,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, help="Queries in flight (1: latency is service time)."
        ),
    ] = 1,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Local benchmark copies (default: Hugging Face)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of the item sample, the order and the sampling.", min=0),
    ] = 0,
    mode: Annotated[
        ModeChoice,
        typer.Option("--mode", help="force: exactly l tokens; cap: the server's native maximum."),
    ] = ModeChoice.force,
    template: Annotated[
        str, typer.Option("--template", help=f"Chat template: server or {', '.join(TEMPLATES)}.")
    ] = "server",
    thinking: Annotated[
        str | None,
        typer.Option("--thinking", help="tags (<think>) or free text (default: the template's)."),
    ] = None,
    budget_field: Annotated[
        str,
        typer.Option(
            "--budget-field", help="Cap mode's budget field (llama.cpp: thinking_budget_tokens)."
        ),
    ] = "thinking_token_budget",
    bbh_tasks: Annotated[
        str | None, typer.Option("--bbh-tasks", help="BBH tasks to use (default: all 27).")
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    suppress_ids: Annotated[
        str | None,
        typer.Option(
            "--suppress-ids",
            help="Token ids to suppress while thinking (default: from the server's tokenizer).",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="The model's tokenizer.json, for a server without a tokenize endpoint.",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Environment variable holding the API key.")
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries of a transient failure.")
    ] = 3,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for one reply.")
    ] = 600.0,
    extend: Annotated[
        bool, typer.Option("--extend", help="Add these --budgets and --runs to the file's.")
    ] = False,
) -> None:
    """Measure accuracy and latency at each thinking budget; write records for `thinkq fit`."""
    if output.suffix.lower() not in (".jsonl", ".ndjson"):
        fail(f"option -o: {output}: records go to a .jsonl file")
    if not output.parent.is_dir():
        fail(f"option -o: {output}: no such folder {output.parent}")
    levels = integers(budgets, "--budgets")
    ids = integers(suppress_ids, "--suppress-ids") if suppress_ids else None
    try:
        chosen = get_template(template)
    except ValueError as exc:
        fail(f"option --template: {str(exc).partition(': ')[2]}")
    if thinking is not None and thinking not in THINKING:
        fail(f"option --thinking: expected tags or free, got {thinking!r}")
    key = api_key(api_key_env)
    items = _items(dataset, data_dir=data_dir, samples=samples, seed=seed, bbh_tasks=bbh_tasks)
    wanted = run_settings(
        model=model, datasets=dataset, samples=samples, budgets=levels, runs=runs, seed=seed,
        mode=mode.value, template=template, thinking=thinking, budget_field=budget_field,
        bbh_tasks=bbh_tasks, temperature=temperature, top_p=top_p, concurrency=concurrency,
    )  # fmt: skip
    settings, note = resumed(output, wanted, extend=extend)
    queries = plan(items, settings.budgets, settings.runs, seed=seed)
    sampling = Sampling(temperature=temperature, top_p=top_p)
    try:
        local = LocalTokenizer(tokenizer) if tokenizer is not None else None
        server = Server(base_url, model, api_key=key, timeout=timeout, tokenizer=local)
        generator: Generator
        if mode is ModeChoice.cap:
            generator = Capper(server, field=budget_field, sampling=sampling)
        else:
            style = THINKING[thinking] if thinking else None
            generator = Forcer(
                server, template=chosen, thinking=style, sampling=sampling, suppress_ids=ids
            )
        tally = asyncio.run(
            _measure(generator, server, queries, output, settings, retries=retries)
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.stderr.write(
            "interrupted: finished queries are in the file; run the same command to go on\n"
        )
        raise typer.Exit(130) from None
    except RecordError as exc:
        fail(f"option -o: {exc}")
    except _ServerStoppedError as exc:
        sys.stderr.write(
            f"error: the server stopped answering during the run: {exc}; the finished queries "
            f"are in {output}: run the same command to go on\n"
        )
        raise typer.Exit(1) from None
    except ServerError as exc:
        sys.stderr.write(f"error: {_option(exc)}\n")
        # a server that cannot be reached may have died: a failure, not a user error
        user_error = exc.field is not None and not isinstance(exc, ServerUnreachableError)
        raise typer.Exit(2 if user_error else 1) from None
    except OSError as exc:
        where, why = exc.filename or output, exc.strerror or exc
        sys.stderr.write(f"error: option -o: {where}: cannot write: {why}; the finished records "
                         f"are in {output}: run the same command to go on\n")  # fmt: skip
        raise typer.Exit(1) from None
    Console().print(_summary(output, tally))
    if tally.answered or tally.failed:
        wrote([output])
    if note:
        sys.stderr.write(f"warning: {note}\n")
    if tally.failed:
        sys.stderr.write(
            f"warning: {tally.failed} queries failed (their records say why); "
            "run the same command to try them again\n"
        )
        raise typer.Exit(1)


async def _measure(
    generator: Generator,
    server: Server,
    queries: list[Query],
    output: Path,
    settings: RunSettings,
    *,
    retries: int,
) -> Tally:
    async with server:
        await _preflight(generator, server)
        try:
            with progress("measuring", True) as update:
                return await run(
                    generator,
                    queries,
                    output,
                    model=server.model,
                    concurrency=settings.concurrency,
                    seed=settings.seed,
                    retries=retries,
                    progress=update,
                    settings=settings,
                )
        except ServerUnreachableError as exc:  # it answered the checks: it died, the URL is fine
            raise _ServerStoppedError(exc) from exc
