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

With ``--slots B`` a server phase follows (``--server-only``: replaces) the accuracy
phase: ``--server-queries`` forced queries at each concurrency level 1, 2, 4, ..., B
(or those of ``--server-levels``; the fit's held-out check of a law that bends needs
four or more), written with the batch each saw to ``NAME.server.jsonl``, resumable the same way
(:mod:`thinkq.measure.levels`), then the prompt probe: what a new prompt and the same
prompt held cost the server (:mod:`thinkq.measure.prompt_probe`; llama.cpp only).
"""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thinkq.cli._app import api_key, app, fail, integers, wrote
from thinkq.cli._measurement import (
    Measured,
    Phase,
    ServerStoppedError,
    items_of,
    level_summary,
    measure,
    option_message,
    summary,
)
from thinkq.cli._resume import resumed, run_settings, server_phase
from thinkq.errors import RecordError, ServerError, ServerUnreachableError
from thinkq.measure.cap import Capper
from thinkq.measure.datasets import DATASETS
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generator, Sampling
from thinkq.measure.level_plan import checked_levels
from thinkq.measure.runner import plan
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES, THINKING, get_template
from thinkq.measure.tokenizer import LocalTokenizer

__all__ = ["profile_command"]


class ModeChoice(StrEnum):
    """Values of ``--mode``."""

    force = "force"
    cap = "cap"


# long: the signature declares its 26 options (Typer); the body checks them one
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
    slots: Annotated[
        int | None,
        typer.Option(
            "--slots",
            min=1,
            help="Also measure the server at concurrency 1, 2, 4, ... up to B (NAME.server.jsonl).",
        ),
    ] = None,
    server_only: Annotated[
        bool, typer.Option("--server-only", help="Run only the server phase of --slots.")
    ] = False,
    server_queries: Annotated[
        int, typer.Option("--server-queries", min=1, help="Queries per concurrency level.")
    ] = 32,
    server_levels: Annotated[
        str | None,
        typer.Option(
            "--server-levels",
            help="Concurrency levels of the server phase, e.g. 1,2,3,4 [default: 1, 2, 4, ..., B].",
        ),
    ] = None,
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
    if server_only and slots is None:
        fail("option --server-only: give --slots B, the most queries the server decodes at once")
    if server_levels is not None and slots is None:
        fail("option --server-levels: give --slots B too (the levels run up to B)")
    chosen_levels = None
    if server_levels is not None and slots is not None:
        try:
            chosen_levels = checked_levels(integers(server_levels, "--server-levels"), slots)
        except ValueError as exc:
            fail(f"option --server-levels: {str(exc).partition(': ')[2]}")
    if slots is not None and mode is ModeChoice.cap:
        fail("option --slots: the server phase forces exact budgets; use --mode force")
    key = api_key(api_key_env)
    items = items_of(dataset, data_dir=data_dir, samples=samples, seed=seed, bbh_tasks=bbh_tasks)
    wanted = run_settings(
        model=model, datasets=dataset, samples=samples, budgets=levels, runs=runs, seed=seed,
        mode=mode.value, template=template, thinking=thinking, budget_field=budget_field,
        bbh_tasks=bbh_tasks, temperature=temperature, top_p=top_p, concurrency=concurrency,
    )  # fmt: skip
    phases, note = [], None
    if not server_only:
        settings, note = resumed(output, wanted, extend=extend)
        queries = plan(items, settings.budgets, settings.runs, seed=seed)
        phases.append(Phase(queries, output, settings))
    if slots is not None:
        phases.append(
            server_phase(
                items, wanted, output, slots=slots, per_level=server_queries, levels=chosen_levels
            )
        )
    sampling = Sampling(temperature=temperature, top_p=top_p)
    files = " and ".join(str(phase.output) for phase in phases)
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
        measured = asyncio.run(measure(generator, server, phases, retries=retries))
    except KeyboardInterrupt:
        sys.stderr.write(
            "interrupted: finished queries are in the file; run the same command to go on\n"
        )
        raise typer.Exit(130) from None
    except RecordError as exc:
        fail(f"option -o: {exc}")
    except ServerStoppedError as exc:
        sys.stderr.write(
            f"error: the server stopped answering during the run: {exc}; the finished queries "
            f"are in {files}: run the same command to go on\n"
        )
        raise typer.Exit(1) from None
    except ServerError as exc:
        sys.stderr.write(f"error: {option_message(exc)}\n")
        # a server that cannot be reached may have died: a failure, not a user error
        user_error = exc.field is not None and not isinstance(exc, ServerUnreachableError)
        raise typer.Exit(2 if user_error else 1) from None
    except OSError as exc:
        where, why = exc.filename or output, exc.strerror or exc
        sys.stderr.write(f"error: option -o: {where}: cannot write: {why}; the finished records "
                         f"are in {files}: run the same command to go on\n")  # fmt: skip
        raise typer.Exit(1) from None
    _report(phases, measured, note)


def _report(phases: list[Phase], measured: Measured, note: str | None) -> None:
    """The summary of each phase, the files written, warnings; exit 1 if queries failed."""
    console = Console()
    tallies, probe = measured
    for phase, tally in zip(phases, tallies, strict=True):
        table = summary if phase.slots is None else level_summary
        console.print(table(phase.output, tally))
    probed = probe is not None and probe.tally.answered + probe.tally.failed > 0
    wrote([p.output for p, t in zip(phases, tallies, strict=True)
           if t.answered or t.failed or (probed and p.slots is not None)])  # fmt: skip
    if note:
        sys.stderr.write(f"warning: {note}\n")
    if probe is not None and not probe.timed:
        sys.stderr.write(
            "warning: the server's replies carry no timings: the prompt probe (llama.cpp's "
            "prompt_ms) wrote nothing, and thinkq fit leaves the [server] prompt out\n"
        )
    failed = sum(t.failed for t in tallies) + (probe.tally.failed if probe else 0)
    if failed:
        sys.stderr.write(
            f"warning: {failed} queries failed (their records say why); "
            "run the same command to try them again\n"
        )
        raise typer.Exit(1)
