"""The command line's shared parts: the app, one-line errors, profile loading, output.

Every error a user can cause (a bad profile file, a bad option value, a bad command
line) prints one line ``error: <message>`` on stderr and exits with code 2. A solver
that stops before reaching its tolerance prints the result, then a ``warning:`` line
on stderr, and exits with code 1. ``--json`` writes exactly one JSON object on stdout
(:meth:`thinkq.SolveResult.to_dict`, non-finite numbers as ``null``).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, cast

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from thinkq import __version__
from thinkq._json import finite
from thinkq.errors import ProfileError, ThinkqError
from thinkq.profile import Profile, load_profile, paper_profile

__all__ = [
    "OPTIONS",
    "PIPELINE",
    "api_key",
    "app",
    "draw_seed",
    "dump",
    "fail",
    "finite",
    "grid",
    "integers",
    "load",
    "main",
    "num",
    "progress",
    "wrote",
]

# API argument or profile field -> the option that sets it
OPTIONS = {
    "rate": "--rate",
    "alpha": "--alpha",
    "max_tokens": "--max-tokens",
    "tol": "--tol",
    "max_iter": "--max-iter",
}


# --------------------------------------------------------------------------- errors


def fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with code 2."""
    sys.stderr.write(f"error: {' '.join(message.splitlines())}\n")
    raise typer.Exit(2)


class _UsageErrorLike(Protocol):
    ctx: typer.Context | None

    def format_message(self) -> str: ...


def _usage_error_type() -> type[Exception]:
    # click's UsageError is the base of every error Typer raises for a bad command line
    # (bad option value, unknown option, missing command). Typer vendors click and
    # exports only the subclass BadParameter, so the base is found from there.
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "UsageError" and issubclass(cls, Exception):
            return cls
    return typer.BadParameter  # pragma: no cover


_UsageError = _usage_error_type()

#: The commands in the order of the pipeline: measure, fit, decide, check, serve.
PIPELINE = ("profile", "fit", "solve", "frontier", "simulate", "sweep", "reproduce", "serve",
            "loadtest")  # fmt: skip


def _plain_help(params: Sequence[Any]) -> None:
    """Click-style metavars in the help: ``FLOAT``, ``PATH``, ``a|b``, none for a flag
    (Typer shows ``<bool>``, ``<list[Path]>``); a required argument as ``NAME``."""
    for param in params:
        if getattr(param, "_thinkq_plain", False):
            continue
        param._thinkq_plain = True
        if param.param_type_name == "argument":
            shown = param.metavar or param.name.upper()
            dots = "..." if param.nargs != 1 else ""
            usage = f"{shown}{dots}" if param.required else f"[{shown}]{dots}"
            param._usage_display_name = lambda usage=usage: usage
            param.display_type_rich = lambda ctx: None
        elif getattr(param, "is_flag", False):
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None:
            kind = param.type_descriptor
            if kind.is_choice:
                param.metavar = "|".join(str(getattr(c, "value", c)) for c in kind.choices)
            elif kind.is_path:
                param.metavar = "PATH"
            else:
                names = {float: "FLOAT", int: "INTEGER"}
                param.metavar = names.get(kind.annotation, "TEXT")


class _OneLineErrors(TyperGroup):
    """Typer's command group, with usage errors printed as one ``error:`` line, the
    commands listed in pipeline order and plain metavars in the help."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(PIPELINE)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_help(command.get_params(ctx))
        return command

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        _plain_help(params)
        return params

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _UsageError as exc:
            usage = cast(_UsageErrorLike, exc)
            command = usage.ctx.command_path if usage.ctx is not None else "thinkq"
            message = " ".join(usage.format_message().splitlines())
            sys.stderr.write(f"error: {message} (see '{command} --help')\n")
            sys.exit(2)
        except typer.Abort:
            sys.stderr.write("error: aborted\n")
            sys.exit(1)
        except MemoryError:  # options too large for this machine: a failure, not a traceback
            sys.stderr.write("error: not enough memory for this run; ask for less\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# --------------------------------------------------------------------------- the app

app = typer.Typer(
    cls=_OneLineErrors,
    help="Queueing-aware reasoning-token budgets for LLM servers (arXiv 2601.10274).",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"thinkq {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def load(
    path: Path | None, *, rate: float | None, alpha: float | None, max_tokens: int | None
) -> Profile:
    try:
        profile = paper_profile() if path is None else load_profile(path)
    except ThinkqError as exc:
        fail(str(exc))
    try:
        return profile.replace(rate=rate, alpha=alpha, max_tokens=max_tokens)
    except ProfileError as exc:
        option = OPTIONS.get(exc.field or "")
        fail(f"option {option}: {exc}" if option else str(exc))


def api_key(env: str | None, *, option: str = "--api-key-env") -> str | None:
    """The key in the environment variable ``env``; a one-line error if it is unset."""
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        fail(f"option {option}: the environment variable {env} is not set or empty")
    return key


def integers(text: str, option: str) -> list[int]:
    """Distinct integers >= 0 from a comma-separated option value; one-line errors."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"option {option}: expected comma-separated integers, got {text!r}")
    if not values:
        fail(f"option {option}: give at least one value")
    if any(v < 0 for v in values):
        fail(f"option {option}: values must be >= 0, got {text!r}")
    if len(set(values)) != len(values):
        fail(f"option {option}: a value is given twice in {text!r}")
    return values


def dump(data: dict[str, Any], command: str) -> None:
    """``data`` as one JSON object on stdout, ``format`` (``thinkq-<command>/1``) first
    unless it carries its own, non-finite numbers as ``null``."""
    document = {"format": f"thinkq-{command}/1", **data}
    sys.stdout.write(json.dumps(finite(document), allow_nan=False) + "\n")


def draw_seed(seed: int | None) -> int:
    """``seed``, or a fresh one when none was given (so that it can be printed)."""
    return secrets.randbelow(2**32) if seed is None else seed


def wrote(paths: Iterable[Path]) -> None:
    """Confirm each written file on stderr: ``wrote PATH``."""
    for path in paths:
        sys.stderr.write(f"wrote {path}\n")


def num(value: float | None, spec: str) -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if math.isfinite(value) else str(value)


def grid(title: str, rows: dict[str, str]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows.items():
        table.add_row(label, Text(value))
    return table


def main() -> None:
    """Entry point of the ``thinkq`` console script."""
    app(prog_name="thinkq")


@contextmanager
def progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr, handing out its ``update(done, total)``."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
