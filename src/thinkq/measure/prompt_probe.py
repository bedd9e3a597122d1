"""The prompt probe that closes the server phase: what a new prompt costs the server.

llama.cpp's ``llama-server`` computes a prompt that takes a slot in one step of its
own while the other slots' decoding waits for it, and it keeps prompts in a cache: a
prompt it has seen costs a few milliseconds, a new one hundreds. The accuracy phase
asks every item at every budget, so its latency lines were measured with prompts
mostly held; live traffic from new users brings new prompts. The probe measures both,
on the idle server, one request at a time, for the first :data:`PROBE_ITEMS` items
of each task among the server phase's queries:

1. the item's messages, rendered as the forced requests render them
   (:meth:`~thinkq.measure.forcing.Forcer.render`), with the user's text prefixed by a
   tag unique to this run and item (``[thinkq probe 3fa2c1d0-4] ``), so that no cache
   holds the prompt, go to ``/completions`` with ``max_tokens`` 1 and temperature 0:
   the server's ``timings.prompt_ms`` and ``prompt_n`` (the tokens it computed) are
   the *new* prompt's;
2. the same prompt again, now held: its ``prompt_ms`` and ``prompt_n`` are the
   *held* prompt's.

Each item is one line of ``NAME.server.jsonl`` with ``"phase": "prompt"``: ``task``,
``item_id``, ``model``, ``tag``, ``new_ms``, ``new_n``, ``held_ms``, ``held_n`` and
``error`` (``null``, or why the probe failed, with the numbers ``null``).
``thinkq fit`` turns them into the ``[server]`` table's ``prompt``
(:mod:`thinkq.fit.prompt`). Items already probed are skipped (failed ones are asked
again), as the server phase resumes. A server whose reply carries no ``timings`` (not
llama.cpp) gets no lines: :attr:`Probed.timed` is false, and the command says so once.
Failures map as the server phase's do: a :class:`~thinkq.errors.ServerUnreachableError`
propagates, any other :class:`~thinkq.errors.ServerError` is the item's ``error``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkq.errors import ServerError, ServerUnreachableError
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Timings, timings_of
from thinkq.measure.items import Item
from thinkq.measure.journal import finished
from thinkq.measure.level_plan import LevelQuery
from thinkq.measure.runner import Progress, Tally, Writer

__all__ = ["PHASE", "PROBE_ITEMS", "Probed", "probe_items", "run_probe"]

#: The ``phase`` of a prompt-probe record.
PHASE = "prompt"
#: The most items of each task the probe asks about.
PROBE_ITEMS = 12

#: (task, item id): one probed item.
ProbeKey = tuple[str, str]


@dataclass(frozen=True)
class Probed:
    """What the probe did: its tally, and whether the server times its prompts at all."""

    tally: Tally
    timed: bool = True


def probe_items(queries: Sequence[LevelQuery], *, per_task: int = PROBE_ITEMS) -> list[Item]:
    """The distinct items of ``queries`` in order of first appearance, at most
    ``per_task`` of each task."""
    items: dict[ProbeKey, Item] = {}
    count: dict[str, int] = {}
    for q in queries:
        item = q.query.item
        key = (item.dataset, item.item_id)
        if key not in items and count.get(item.dataset, 0) < per_task:
            items[key] = item
            count[item.dataset] = count.get(item.dataset, 0) + 1
    return list(items.values())


def _key(data: dict[str, Any]) -> ProbeKey | None:
    try:
        return str(data["task"]), str(data["item_id"])
    except (KeyError, TypeError):
        return None


def _outside(key: ProbeKey, grid: Collection[ProbeKey]) -> str:
    return f"item_id: item {key[1]!r} of {key[0]} is not among this run's probed items"


async def _timed(forcer: Forcer, prompt: str) -> Timings:
    """The server's timings of one prompt (one token generated, greedily)."""
    body = {"model": forcer.server.model, "prompt": prompt, "max_tokens": 1, "temperature": 0}
    return timings_of(await forcer.server.post("/completions", body), 0.0, 0.0)


def _line(item: Item, model: str, tag: str, **values: Any) -> dict[str, Any]:
    """A probe line; without ``values``, a failed one's numbers (``null``)."""
    numbers = dict.fromkeys(("new_ms", "new_n", "held_ms", "held_n")) | values
    return {"phase": PHASE, "task": item.dataset, "item_id": item.item_id, "model": model,
            "tag": tag.strip(), **numbers}  # fmt: skip


def _record(item: Item, model: str, tag: str, new: Timings, held: Timings) -> dict[str, Any]:
    """The line of a probe that was answered (a failed one if a reply was not timed)."""
    if new.prompt_ms is None or held.prompt_ms is None:
        why = "server: a reply of the prompt probe carried no timings.prompt_ms"
        return _line(item, model, tag, error=why)
    return _line(item, model, tag, new_ms=new.prompt_ms, new_n=new.prompt_n,
                 held_ms=held.prompt_ms, held_n=held.prompt_n, error=None)  # fmt: skip


async def _probe(
    forcer: Forcer, item: Item, tag: str, *, retries: int, backoff: float
) -> tuple[Timings, Timings, str]:
    """The new and the held prompt's timings of ``item`` and the tag it went with; a
    transient failure is tried again (with a new tag: the old may be cached by now)."""
    for attempt in range(retries + 1):
        tagged = tag if attempt == 0 else f"{tag[:-2]}.{attempt}] "
        messages = [{"role": "user", "content": tagged + item.prompt}]
        try:
            prompt = await forcer.render(messages)
            return await _timed(forcer, prompt), await _timed(forcer, prompt), tagged
        except ServerError as exc:
            if not exc.transient or attempt == retries:
                raise
        await asyncio.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def run_probe(
    forcer: Forcer,
    queries: Sequence[LevelQuery],
    out: Path,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> Probed:
    """Probe the items of ``queries`` not yet probed in ``out``; append their lines.

    Raises
    ------
    RecordError
        ``out`` holds probe lines of another model or of items not among these.
    ServerUnreachableError, OSError
        The server could not be reached, or ``out`` not written.
    """
    model = forcer.server.model
    items = probe_items(queries)
    grid = {(i.dataset, i.item_id) for i in items}
    done = finished(out, model=model, grid=grid, key=_key, outside=_outside, phase=PHASE)
    todo = [(k, i) for k, i in enumerate(items) if (i.dataset, i.item_id) not in done]
    tally = Tally(total=len(items), skipped=len(items) - len(todo))
    if progress:
        progress(tally.skipped, tally.total)
    run = secrets.token_hex(4)  # this run's: a tag of an earlier run may be cached
    writer = Writer(out, tally, progress)
    try:
        for k, item in todo:
            tag = f"[thinkq probe {run}-{k}] "
            try:
                new, held, tag = await _probe(forcer, item, tag, retries=retries, backoff=backoff)
            except ServerError as exc:
                if isinstance(exc, ServerUnreachableError):
                    raise
                await writer.write(_line(item, model, tag, error=str(exc)))
                continue
            if new.prompt_ms is None and not done and not tally.answered:
                return Probed(tally, timed=False)  # not llama.cpp: nothing to write
            await writer.write(_record(item, model, tag, new, held))
    finally:
        writer.close()
    return Probed(tally)
