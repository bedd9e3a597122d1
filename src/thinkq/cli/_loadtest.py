"""``thinkq loadtest``: Poisson load with real benchmark prompts against a gateway.

Prints the mean and percentiles of the sojourn time per type (a table, or one JSON
object with ``--json``). A target that cannot be reached stops the command at once
(exit code 1) rather than after the schedule of its queries.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from thinkq.cli._app import api_key, app, dump, fail, num, progress
from thinkq.errors import DatasetError, ServerError
from thinkq.measure.server import CONNECT_TIMEOUT, check_base_url
from thinkq.serve.loadtest import LoadResult, load_prompts, run_load

__all__ = ["loadtest_command", "parse_mix"]

#: Prompts loaded per type (drawn in turn by the queries of that type).
PROMPTS_PER_TASK = 200


def parse_mix(text: str) -> dict[str, float]:
    """``"gsm8k=0.5,aime=0.5"`` as a mapping; a one-line error if malformed."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, equals, share = part.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not equals or not task.strip() or not value >= 0:
            fail(f"option --mix: expected task=share pairs like gsm8k=0.7,aime=0.3, got {part!r}")
        mix[task.strip()] = value
    if not mix or not sum(mix.values()) > 0:
        fail("option --mix: the shares must have a positive sum")
    return mix


def _check_target(target: str, key: str | None) -> None:
    """A one-line error, exit code 1, for a target that cannot be reached."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = target.rstrip("/") + "/models"
    try:
        httpx.get(url, headers=headers, timeout=CONNECT_TIMEOUT)
    except httpx.HTTPError as exc:  # any reply at all (even 404) means the target is there
        sys.stderr.write(f"error: option --target: cannot connect to {url} ({exc})\n")
        raise typer.Exit(1) from None


def _gateway_mix(target: str, key: str | None) -> dict[str, float]:
    """The shares the gateway at ``target`` estimates (``GET /thinkq/state``)."""
    url = target.rstrip("/").removesuffix("/v1") + "/thinkq/state"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        reply = httpx.get(url, headers=headers, timeout=10)
        shares = reply.json()["shares_estimate"]
        return {str(task): float(share) for task, share in shares.items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        fail(f"option --mix: not given, and {url} gave no shares_estimate; give --mix")


def _prompts(shares: dict[str, float], data_dir: Path | None, seed: int) -> dict[str, list[str]]:
    try:
        return load_prompts(list(shares), data_dir=data_dir, n=PROMPTS_PER_TASK, seed=seed)
    except DatasetError as exc:
        fail(str(exc))


def _render(result: LoadResult) -> None:
    table = Table(
        title=f"{result.overall.sent} queries at {result.rate:g}/s in {result.duration:.1f} s "
        "(sojourn times in seconds)",
        title_justify="left",
    )
    table.add_column("task", overflow="fold")  # a long BBH task name folds: 80 columns
    for header in ("sent", "served", "503", "failed", "mean", "p50", "p90", "p99"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in (*result.tasks, result.overall):
        table.add_row(
            row.name,
            str(row.sent),
            str(row.served),
            str(row.rejected),
            str(row.failed),
            *(num(v, ".3f") for v in (row.mean, row.p50, row.p90, row.p99)),
        )
    Console().print(table)


# long: most of it is the options' declarations, one per option, as Typer reads them
@app.command("loadtest")
def loadtest_command(
    target: Annotated[
        str, typer.Option("--target", help="The gateway's API root: http://host:port/v1.")
    ],
    rate: Annotated[float, typer.Option("--rate", help="Arrival rate (queries/s).", min=1e-9)],
    queries: Annotated[
        int, typer.Option("--queries", help="Number of queries.", min=1, max=1_000_000)
    ],
    mix: Annotated[
        str | None,
        typer.Option("--mix", help="task=share,... (default: the gateway's estimate)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Local benchmark copies (default: Hugging Face)."),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="Answer tokens per request.", min=1)
    ] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of arrivals and prompts.", min=0)] = 0,
    unique: Annotated[
        bool,
        typer.Option(
            "--unique-prompts", help="Tag each prompt with its query, so no server cache holds it."
        ),
    ] = False,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Environment variable holding the key.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Send Poisson load with benchmark prompts; print sojourn times per type."""
    try:
        check_base_url(target)
    except ServerError as exc:
        fail(f"option --target: {str(exc).removeprefix('base_url: ')}")
    key = api_key(api_key_env)
    given = parse_mix(mix) if mix is not None else None
    prompts = _prompts(given, data_dir, seed) if given is not None else None
    _check_target(target, key)  # the user's errors first, then the target's
    shares = given if given is not None else _gateway_mix(target, key)
    if prompts is None:
        prompts = _prompts(shares, data_dir, seed)
    with progress("Load", not as_json) as update:
        try:
            result = asyncio.run(
                run_load(
                    target, rate=rate, queries=queries, mix=shares, prompts=prompts,
                    max_tokens=max_tokens, seed=seed, unique=unique, api_key=key,
                    progress=update,
                )
            )  # fmt: skip
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        dump(result.to_dict() | {"seed": seed, "unique_prompts": unique}, "loadtest")
    else:
        _render(result)
    if result.overall.served == 0:
        sys.stderr.write(f"warning: no query was served by {target}\n")
        raise typer.Exit(1)
