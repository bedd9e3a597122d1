"""The records file of a run: what it already answers, and appending to it safely.

:func:`finished` reads what an earlier run wrote: queries with a record count as done,
failed ones are dropped (atomically) so that they are asked again, and a last line cut
short by a crash is removed. :class:`Appender` adds one line per finished query,
written whole and at once; a write that fails (a full disk, a file made read-only) is
undone to the last complete line before the error goes on, so the finished records stay
a valid file and the same command resumes from them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from thinkq._files import write_atomic
from thinkq.errors import RecordError

__all__ = ["Appender", "Key", "finished"]

#: (task, item id, budget, run): one cell of the grid.
Key = tuple[str, str, int, int]
K = TypeVar("K", bound=Hashable)


def _key(data: dict[str, Any]) -> Key | None:
    try:
        return (str(data["task"]), str(data["item_id"]), int(data["budget"]), int(data["run"]))
    except (KeyError, TypeError, ValueError):
        return None


def _outside(key: Key, grid: Collection[Key]) -> str:
    """Which setting puts ``key`` outside ``grid``: its field and a phrase."""
    budgets = {k[2] for k in grid}
    runs = {k[3] for k in grid}
    if key[2] not in budgets:
        return f"budget: budget {key[2]} is not among this run's --budgets"
    if key[3] not in runs:
        return f"run: run {key[3]} is beyond this run's --runs {len(runs)}"
    return f"item_id: item {key[1]!r} of {key[0]} is not in this run's sample"


def finished(
    path: Path,
    *,
    model: str,
    grid: Collection[K] | None = None,
    key: Callable[[dict[str, Any]], K | None] = _key,  # type: ignore[assignment]
    outside: Callable[[K, Collection[K]], str] = _outside,  # type: ignore[assignment]
    phase: str | None = None,
) -> set[K]:
    """The keys of the queries ``path`` already answers; clean the file for appending.

    A last line without its newline (a crash while writing) and the lines of failed
    queries are removed, atomically, so that they are asked again. With ``grid``,
    every record must be one of its cells: records of other settings are not mixed in.
    ``key`` reads a record's key (default: task, item, budget, run) and ``outside``
    says which setting puts a key outside ``grid`` (its field and a phrase). With
    ``phase``, lines of another phase of the file (the prompt probe's and the server
    phase's share ``NAME.server.jsonl``) are kept as they are, unread.

    Raises
    ------
    RecordError
        The file has lines that are not records of ``thinkq profile``, records of
        another model, or records outside ``grid``.
    """
    if not path.exists():
        return set()
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    keep: list[bytes] = []
    done: set[K] = set()
    for number, line in enumerate(complete.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            data = None
        if phase is not None and isinstance(data, dict) and data.get("phase") not in (None, phase):
            keep.append(line)  # another phase's: its own pass reads it
            continue
        if (found := key(data) if isinstance(data, dict) else None) is None or data is None:
            raise RecordError([f"{path}:{number}: record: not a record of thinkq profile"])
        if data.get("model") != model:
            raise RecordError(
                [f"{path}:{number}: model: records of {data.get('model')!r}, not {model!r}; "
                 "write another model's records to another file"]
            )  # fmt: skip
        if grid is not None and found not in grid:
            raise RecordError(
                [f"{path}:{number}: {outside(found, grid)}; resume with the settings the "
                 "records were made with, or write to another -o"]
            )  # fmt: skip
        if data.get("error") is None:
            keep.append(line)
            done.add(found)
    kept = b"".join(keep)
    if kept != raw:
        write_atomic(path, kept)
    return done


def open_append(path: Path) -> BinaryIO:
    """``path`` opened for appending, unbuffered: a line is written or fails at once."""
    return path.open("ab", buffering=0)


class Appender:
    """Appends JSON lines to ``path`` (opened at the first); a failed write is undone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: BinaryIO | None = None
        self.size = 0

    def append(self, line: dict[str, Any]) -> None:
        """Write ``line`` whole, or raise ``OSError`` with the file as it was before."""
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        if self.stream is None:
            self.stream = open_append(self.path)
            self.size = self.stream.seek(0, 2)
        view = memoryview(data)
        try:
            while view:
                written = self.stream.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                view = view[written:]
        except OSError:
            # cut the partial line off: the file ends with its last whole record (if even
            # that fails, the next run removes the partial line)
            with contextlib.suppress(OSError):
                self.stream.truncate(self.size)
            raise
        self.size += len(data)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
