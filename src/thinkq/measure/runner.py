"""The measurement grid: every (task, item, budget, run), answered, graded and written.

:func:`plan` lays out the grid in a seeded random order, so that slow drifts of the
server (warm-up, caches, thermal limits) spread over all budgets instead of biasing
one. :func:`run` answers it with a :class:`~thinkq.measure.generation.Generator` and
appends one :class:`~thinkq.records.Record` line per finished query to a ``.jsonl``
file, flushed as it goes.

Resuming: :func:`~thinkq.measure.journal.finished` reads what an earlier run wrote.
Queries with a record are skipped, failed ones are tried again (their lines are dropped
first, atomically), and a last line cut short by a crash is removed; a record outside
the grid (another run's settings) stops the run before anything is asked. So a run
stopped at any point and started again completes the grid with nothing lost and nothing
twice. The run's :class:`~thinkq.measure.settings.RunSettings` are written beside the
records before the first query, for the next run to check.

A write that fails (a full disk) raises ``OSError`` with the file cut back to its last
whole record.

Failures: a transient failure (refused connection, timeout, 5xx) is retried with
exponential backoff; a query that still fails, or whose thinking missed its budget,
is written with ``error`` set and ``correct = false`` (the fit leaves it out). A
server that cannot be reached at all stops the run: writing a failure for every
remaining query would only have to be undone.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkq.errors import ServerError, ServerUnreachableError
from thinkq.measure.generation import Generation, Generator
from thinkq.measure.graders import grade
from thinkq.measure.items import Item
from thinkq.measure.journal import Appender, Key, finished
from thinkq.measure.prompts import answer_cue
from thinkq.measure.settings import RunSettings, read_settings, write_settings

__all__ = ["Progress", "Query", "Tally", "Writer", "answer", "failure", "finished", "plan", "run"]

#: ``progress(done, total)`` after every finished query.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Query:
    """One cell of the grid: an item asked at a budget, in one of the runs."""

    item: Item
    budget: int
    run: int

    @property
    def key(self) -> Key:
        return (self.item.dataset, self.item.item_id, self.budget, self.run)

    def seed(self, seed: int) -> int:
        """The sampling seed of this query: fixed by the run's seed and the key."""
        text = "\x1f".join(map(str, (seed, *self.key)))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def plan(items: Sequence[Item], budgets: Sequence[int], runs: int, *, seed: int = 0) -> list[Query]:
    """Every (item, budget, run) once, in a random order fixed by ``seed``.

    Where it can, no query directly follows one of the same item: a server reuses
    the prompt it just processed (prefix caching), and a measured service time should
    include the prompt's processing, as it does for live traffic of distinct queries.
    """
    grid = [Query(item, budget, run) for run in range(runs) for item in items for budget in budgets]
    rng = random.Random(seed)
    best = grid
    for _ in range(100):  # a shuffle and one repair pass; rarely more than one try
        order = rng.sample(grid, len(grid))
        for i in range(1, len(order)):
            if _item(order[i]) == _item(order[i - 1]):
                swap = next(
                    (j for j in range(i + 1, len(order)) if _item(order[j]) != _item(order[i])),
                    None,
                )
                if swap is not None:
                    order[i], order[swap] = order[swap], order[i]
        if _repeats(order) < _repeats(best) or best is grid:
            best = order
        if _repeats(best) == 0:
            break
    return best


def _repeats(order: Sequence[Query]) -> int:
    return sum(_item(a) == _item(b) for a, b in itertools.pairwise(order))


def _item(query: Query) -> tuple[str, str]:
    return (query.item.dataset, query.item.item_id)


@dataclass
class Tally:
    """What a run did: queries answered, failed, and skipped as already done."""

    total: int
    skipped: int = 0
    answered: int = 0
    failed: int = 0


def _record(query: Query, model: str, concurrency: int, gen: Generation) -> dict[str, Any]:
    verdict = grade(query.item, gen.answer)
    return {
        "task": query.item.dataset,
        "item_id": query.item.item_id,
        "budget": query.budget,
        "run": query.run,
        "correct": verdict.correct,
        "latency_s": gen.latency_s,
        "thinking_tokens": gen.thinking_tokens,
        "answer_tokens": gen.answer_tokens,
        "prompt_tokens": gen.prompt_tokens,
        "model": model,
        "mode": gen.mode,
        "concurrency": concurrency,
        "extracted": verdict.extracted,
        "thinking": gen.thinking,
        "answer": gen.answer,
        "error": None,
    }


def failure(
    query: Query, model: str, concurrency: int, error: ServerError, elapsed: float
) -> dict[str, Any]:
    return {
        "task": query.item.dataset,
        "item_id": query.item.item_id,
        "budget": query.budget,
        "run": query.run,
        "correct": False,
        "latency_s": elapsed,
        "model": model,
        "concurrency": concurrency,
        "error": str(error),
    }


async def answer(
    generator: Generator, query: Query, *, seed: int, retries: int, backoff: float
) -> Generation:
    """``query`` answered by ``generator``; a transient failure is tried ``retries`` times
    more, with exponential backoff from ``backoff`` seconds."""
    messages = [{"role": "user", "content": query.item.prompt}]
    cue = answer_cue(query.item.dataset, query.item.prompt)
    for attempt in range(retries + 1):
        try:
            return await generator.generate(messages, query.budget, cue=cue, seed=query.seed(seed))
        except ServerError as exc:
            if not exc.transient or attempt == retries:
                raise
        await asyncio.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _todo(
    queries: Sequence[Query], out: Path, *, model: str, settings: RunSettings | None
) -> list[Query]:
    """The queries ``out`` does not answer yet; the settings written beside it."""
    done = finished(out, model=model, grid={q.key for q in queries})
    if settings is not None and _written(out) != settings:
        write_settings(out, settings)
    return [q for q in queries if q.key not in done]


def _written(out: Path) -> RunSettings | None:
    try:
        return read_settings(out)
    except ValueError:  # malformed: written anew
        return None


async def run(
    generator: Generator,
    queries: Sequence[Query],
    out: Path,
    *,
    model: str,
    concurrency: int = 1,
    seed: int = 0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: Progress | None = None,
    settings: RunSettings | None = None,
) -> Tally:
    """Answer ``queries`` not yet in ``out`` and append their records to it.

    ``concurrency`` queries are in flight at once (1: latency is the service time);
    ``settings`` are written beside ``out`` before the first query.

    Raises
    ------
    RecordError
        ``out`` holds lines that are not records of this grid (``queries``) and model.
    ServerError, OSError
        The server could not be reached (even after ``retries`` attempts), or ``out``
        not written (a full disk); the records written until then stay whole.
    """
    todo = _todo(queries, out, model=model, settings=settings)
    tally = Tally(total=len(queries), skipped=len(queries) - len(todo))
    if progress:
        progress(tally.skipped, tally.total)
    if not todo:
        return tally
    await generator.prepare()
    writer = Writer(out, tally, progress)
    write = writer.write
    pending = iter(todo)

    async def worker() -> None:
        for query in pending:
            started = asyncio.get_running_loop().time()
            try:
                gen = await answer(generator, query, seed=seed, retries=retries, backoff=backoff)
            except ServerError as exc:
                if isinstance(exc, ServerUnreachableError):
                    raise
                elapsed = asyncio.get_running_loop().time() - started
                await write(failure(query, model, concurrency, exc, elapsed))
                continue
            await write(_record(query, model, concurrency, gen))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, len(todo)))):
                group.create_task(worker())
    except* (ServerError, OSError) as failures:
        raise failures.exceptions[0] from None
    finally:
        writer.close()
    return tally


class Writer:
    """Appends records to ``out``, one at a time, and counts them in ``tally``."""

    def __init__(self, out: Path, tally: Tally, progress: Progress | None) -> None:
        self.appender = Appender(out)
        self.tally = tally
        self.progress = progress
        self.lock = asyncio.Lock()

    async def write(self, line: dict[str, Any]) -> None:
        async with self.lock:
            self.appender.append(line)
            tally = self.tally
            if line["error"] is None:
                tally.answered += 1
            else:
                tally.failed += 1
            if self.progress:
                self.progress(tally.skipped + tally.answered + tally.failed, tally.total)

    def close(self) -> None:
        self.appender.close()
