"""The server phase of ``thinkq profile --slots B``: the same forced requests at
concurrency n = 1, 2, 4, ..., B (or the levels of ``--server-levels``), each record
with the batch it saw.

:func:`~thinkq.measure.level_plan.plan_levels` takes the first ``per_level`` queries
of a seeded plan of the grid (items x the budgets above 0; budget 0 decodes no
thinking) and asks the same ones at every level. The levels are interleaved in rounds
(1, 2, 4, ..., B,
then again with the next block of queries), so that a slow drift of the machine
(another job, thermal limits) spreads over all levels instead of biasing one against
another. :func:`run_levels` answers the blocks in order, each as a closed loop: n
workers, each sending its next query as soon as its last one is answered, so that n
queries are in service until the block's queue runs dry. Every finished query
is one line of ``NAME.server.jsonl`` (:func:`server_records_path`), with

* its concurrency level and the run's ``slots``; its budget, tokens and latency;
* the server's own timings of the thinking request where it reports them
  (``predicted_ms`` for ``predicted_n`` tokens, ``prompt_ms``), and ``think_s``, the
  client's wall time of that request;
* ``batch``: the time-averaged number of queries the client had in service while
  this one decoded (:class:`~thinkq.measure.inflight.InFlight`), and ``batch_slots``
  with ``slot_samples``: the mean of the server's busy slots sampled over the same
  window, where the server has ``/slots``;
* ``decode_start_s`` and ``decode_end_s``: that window, in seconds from the start of
  the phase.

The window is the decoding part of the thinking request: its last ``predicted_ms``
where the server reports it, else the whole request. Runs resume as the accuracy
phase does (:func:`~thinkq.measure.journal.finished`), keyed by (concurrency, task,
item, budget, run); a level resumed with fewer queries left than workers measures
smaller batches, and says so in its records.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkq.errors import ServerError, ServerUnreachableError
from thinkq.measure.generation import Generation, Generator, Timings
from thinkq.measure.graders import grade
from thinkq.measure.inflight import InFlight, SlotWatch
from thinkq.measure.journal import finished
from thinkq.measure.level_plan import LevelKey, LevelQuery
from thinkq.measure.runner import Progress, Tally, Writer, answer, failure
from thinkq.measure.server import Server
from thinkq.measure.settings import RunSettings, read_settings, write_settings

__all__ = ["PHASE", "run_levels", "server_records_path"]

#: The ``phase`` of a server-phase record.
PHASE = "server"


def server_records_path(out: Path) -> Path:
    """Where the server phase of the records ``out`` goes: ``NAME.server.jsonl``."""
    return out.with_name(f"{out.stem}.server{out.suffix}")


def _key(data: dict[str, Any]) -> LevelKey | None:
    try:
        return (
            int(data["concurrency"]),
            str(data["task"]),
            str(data["item_id"]),
            int(data["budget"]),
            int(data["run"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _outside(key: LevelKey, grid: Collection[LevelKey]) -> str:
    if key[0] not in {k[0] for k in grid}:
        return (
            f"concurrency: level {key[0]} is not among this run's levels (--slots, --server-levels)"
        )
    if key[3] not in {k[3] for k in grid}:
        return f"budget: budget {key[3]} is not among this run's --budgets"
    return f"item_id: item {key[2]!r} of {key[1]} is not among this run's --server-queries"


def _window(t: Timings) -> tuple[float, float]:
    """The decoding part of the thinking request (perf_counter seconds)."""
    if t.predicted_ms is None:
        return t.start, t.end
    return max(t.start, t.end - t.predicted_ms / 1e3), t.end


@dataclass
class _Level:
    """What the workers of one level share."""

    generator: Generator
    model: str
    slots: int
    seed: int
    retries: int
    backoff: float
    writer: Writer
    inflight: InFlight
    watch: SlotWatch
    origin: float  # perf_counter seconds at the start of the phase


def _record(q: LevelQuery, level: _Level, gen: Generation) -> dict[str, Any]:
    t = gen.timings
    if t is None:  # the forcer times every thinking request; budget 0 is not planned
        raise ValueError("the server phase needs the timings of a forced thinking request")
    start, end = _window(t)
    batch_slots, samples = level.watch.mean(start, end)
    return {
        "phase": PHASE,
        "task": q.query.item.dataset,
        "item_id": q.query.item.item_id,
        "budget": q.query.budget,
        "run": q.query.run,
        "concurrency": q.concurrency,
        "slots": level.slots,
        "correct": grade(q.query.item, gen.answer).correct,
        "latency_s": gen.latency_s,
        "thinking_tokens": gen.thinking_tokens,
        "answer_tokens": gen.answer_tokens,
        "prompt_tokens": gen.prompt_tokens,
        "batch": level.inflight.mean(start, end),
        "batch_slots": batch_slots,
        "slot_samples": samples,
        "think_s": t.end - t.start,
        "predicted_ms": t.predicted_ms,
        "predicted_n": t.predicted_n,
        "predicted_per_token_ms": t.predicted_per_token_ms,
        "prompt_ms": t.prompt_ms,
        "prompt_n": t.prompt_n,
        "decode_start_s": start - level.origin,
        "decode_end_s": end - level.origin,
        "model": level.model,
        "mode": gen.mode,
        "error": None,
    }


async def _worker(level: _Level, pending: Iterator[LevelQuery]) -> None:
    loop = asyncio.get_running_loop()
    for q in pending:
        started = loop.time()
        level.inflight.enter()
        try:
            gen = await answer(
                level.generator, q.query, seed=level.seed, retries=level.retries,
                backoff=level.backoff,
            )  # fmt: skip
        except ServerError as exc:
            if isinstance(exc, ServerUnreachableError):
                raise
            line = failure(q.query, level.model, q.concurrency, exc, loop.time() - started)
            await level.writer.write({"phase": PHASE, **line, "slots": level.slots})
            continue
        finally:
            level.inflight.leave()
        await level.writer.write(_record(q, level, gen))


# long: the phase's one entry point: resume, then each level as a closed loop of its
# workers, with the failures mapped as the accuracy phase maps them
async def run_levels(
    generator: Generator,
    server: Server,
    queries: Sequence[LevelQuery],
    out: Path,
    *,
    slots: int,
    seed: int = 0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: Progress | None = None,
    settings: RunSettings | None = None,
) -> Tally:
    """Answer ``queries`` not yet in ``out``, level by level, and append their records.

    ``settings`` are written beside ``out`` before the first query.

    Raises
    ------
    RecordError
        ``out`` holds lines that are not records of these queries and model.
    ServerError, OSError
        As :func:`~thinkq.measure.runner.run`.
    """
    done = finished(
        out, model=server.model, grid={q.key for q in queries}, key=_key, outside=_outside,
        phase=PHASE,
    )  # fmt: skip
    if settings is not None and _written(out) != settings:
        write_settings(out, settings)
    todo = [q for q in queries if q.key not in done]
    tally = Tally(total=len(queries), skipped=len(queries) - len(todo))
    if progress:
        progress(tally.skipped, tally.total)
    if not todo:
        return tally
    await generator.prepare()
    writer = Writer(out, tally, progress)
    inflight = InFlight()
    try:
        async with SlotWatch(server.http, server.root) as watch:
            shared = _Level(
                generator, server.model, slots, seed, retries, backoff, writer, inflight, watch,
                time.perf_counter(),
            )  # fmt: skip
            for n, block in itertools.groupby(todo, key=lambda q: q.concurrency):
                pending = iter(list(block))
                async with asyncio.TaskGroup() as group:
                    for _ in range(n):
                        group.create_task(_worker(shared, pending))
    except* (ServerError, OSError) as failures:
        raise failures.exceptions[0] from None
    finally:
        writer.close()
    return tally


def _written(out: Path) -> RunSettings | None:
    try:
        return read_settings(out)
    except ValueError:  # malformed: written anew
        return None
