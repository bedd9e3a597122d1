"""A Poisson load generator with real benchmark prompts (``thinkq loadtest``).

Queries arrive as a Poisson process of rate ``rate`` (exponential gaps, drawn up
front from ``seed``), each of a type drawn from ``mix`` and carrying a prompt of that
type's benchmark set. Each is sent as a chat request with its type in
``X-Thinkq-Task``, on its own schedule whatever the replies before it, so the load
is open-loop as in the model. The sojourn time of a query is measured from its
scheduled send to the end of its reply (seconds).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from thinkq.errors import DatasetError
from thinkq.measure.datasets import DATASETS, load_dataset

__all__ = ["LoadResult", "TaskLoad", "dataset_of", "load_prompts", "run_load"]


@dataclass(frozen=True, slots=True)
class TaskLoad:
    """What one type's queries saw: counts by outcome, and sojourn times of those served.

    ``mean``, ``p50``, ``p90`` and ``p99`` are seconds over the served queries
    (``None`` when none was served); ``rejected`` counts 503s, ``failed`` any other
    failure (a status other than 200 or no reply).
    """

    name: str
    sent: int
    served: int
    rejected: int
    failed: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, name: str, results: Sequence[tuple[int, float]]) -> TaskLoad:
        times = np.array([t for status, t in results if status == 200])
        stats: list[float | None] = [None, None, None]
        if times.size:
            stats = [float(np.percentile(times, q)) for q in (50, 90, 99)]
        p50, p90, p99 = stats
        return cls(
            name=name,
            sent=len(results),
            served=int(times.size),
            rejected=sum(1 for status, _ in results if status == 503),
            failed=sum(1 for status, _ in results if status not in (200, 503)),
            mean=float(times.mean()) if times.size else None,
            p50=p50,
            p90=p90,
            p99=p99,
        )


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A load test: the target ``rate`` (1/s), the rate of the arrivals drawn
    (``offered_rate``, queries over the last arrival time), the duration until the last
    reply (s), per type and overall."""

    rate: float
    offered_rate: float
    duration: float
    tasks: tuple[TaskLoad, ...]
    overall: TaskLoad

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "offered_rate": self.offered_rate,
            "duration": self.duration,
            "overall": asdict(self.overall),
            "tasks": [asdict(t) for t in self.tasks],
        }


def dataset_of(task: str) -> tuple[str, list[str] | None]:
    """The benchmark set of a task name and, for one BBH task, that task:
    ``"GSM8K"`` -> ``("gsm8k", None)``, ``"ARC-Challenge"`` -> ``("arc_challenge",
    None)``, ``"bbh/boolean_expressions"`` (the names ``thinkq profile`` gives BBH's
    tasks) -> ``("bbh", ["boolean_expressions"])``; case and dashes in the set's name
    do not matter.

    Raises
    ------
    DatasetError
        The name is not one of the benchmark sets.
    """
    head, _, subtask = task.strip().partition("/")
    name = head.lower().replace("-", "_")
    if name not in DATASETS or (subtask and name != "bbh"):
        raise DatasetError(
            f"mix: task {task!r} names no benchmark set (one of {', '.join(DATASETS)}, "
            "or bbh/<task>)",
            field="mix",
        )
    return name, [subtask] if subtask else None


def load_prompts(
    tasks: Sequence[str], *, data_dir: str | Path | None, n: int, seed: int = 0
) -> dict[str, list[str]]:
    """Up to ``n`` prompts of each task's benchmark set (see :func:`dataset_of`)."""
    prompts = {}
    for task in tasks:
        name, subset = dataset_of(task)
        items = load_dataset(name, data_dir=data_dir, n=n, seed=seed, subset=subset)
        prompts[task] = [item.prompt for item in items]
    return prompts


# long: a third is the docstring of its options; the rest is one open-loop schedule
# (the draws, then one task per query), clearest in one piece
async def run_load(
    target: str,
    *,
    rate: float,
    queries: int,
    mix: Mapping[str, float],
    prompts: Mapping[str, Sequence[str]],
    max_tokens: int = 64,
    stop: Sequence[str] = (),
    seed: int = 0,
    unique: bool = False,
    api_key: str | None = None,
    timeout: float = 600.0,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Send ``queries`` chat requests to ``target`` as a Poisson process of ``rate``.

    Parameters
    ----------
    target:
        The API root, as in the OpenAI client (``http://127.0.0.1:8000/v1``).
    rate:
        Arrival rate, queries per second.
    queries:
        Number of queries.
    mix:
        Task name to share (normalised).
    prompts:
        Task name to its prompts (drawn in turn).
    max_tokens, stop:
        Answer tokens per request, and the strings that end an answer.
    seed:
        Seed of the arrival times, types and prompts.
    unique:
        Start each query's prompt with its own tag (``[query 5f0c9a1e-17]``: a random
        hex of this call, then the query), so that no two queries, of this run or
        another (of the same seed too), share a prefix beyond the chat template's: a
        server's prompt cache then holds nothing of a query before it arrives, as with
        new users' queries. Without it the prompts recur, and a server that caches them
        computes fewer of them.
    api_key, timeout, transport:
        Sent as a bearer token; seconds per request; an ``httpx`` transport (tests).
    progress:
        Called as ``progress(done, queries)`` after each reply.
    """
    if not rate > 0:
        raise ValueError(f"rate: must be > 0 queries per second, got {rate!r}")
    if queries < 1:
        raise ValueError(f"queries: must be >= 1, got {queries!r}")
    names = list(mix)
    shares = np.array([mix[n] for n in names], dtype=np.float64)
    if not names or np.any(shares < 0) or not shares.sum() > 0:
        raise ValueError("mix: expected task=share pairs with shares >= 0 and a positive sum")
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / rate, queries))
    kinds = rng.choice(len(names), size=queries, p=shares / shares.sum())
    draws = rng.integers(0, 1 << 30, size=queries)
    nonce = secrets.token_hex(4)  # another run's tags, even of the same seed, differ
    results: list[list[tuple[int, float]]] = [[] for _ in names]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    done = 0
    async with httpx.AsyncClient(
        base_url=target.rstrip("/"),
        headers=headers,
        timeout=timeout,
        transport=transport,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
    ) as client:
        start = time.perf_counter()

        async def one(k: int) -> None:
            nonlocal done
            task, scheduled = names[kinds[k]], start + float(times[k])
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            texts = prompts[task]
            text = texts[int(draws[k]) % len(texts)]
            if unique:
                text = f"[query {nonce}-{k}] {text}"
            body = {
                "messages": [{"role": "user", "content": text}],
                "max_tokens": max_tokens,
                "seed": int(draws[k]),
            }
            if stop:
                body["stop"] = list(stop)
            try:
                reply = await client.post(
                    "/chat/completions", json=body, headers={"X-Thinkq-Task": task}
                )
                status = reply.status_code
            except httpx.HTTPError:
                status = 0
            results[kinds[k]].append((status, time.perf_counter() - scheduled))
            done += 1
            if progress is not None:
                progress(done, queries)

        await asyncio.gather(*(one(k) for k in range(queries)))
        duration = time.perf_counter() - start
    every = [r for per_task in results for r in per_task]
    return LoadResult(
        rate=rate,
        offered_rate=queries / float(times[-1]),
        duration=duration,
        tasks=tuple(TaskLoad.of(n, r) for n, r in zip(names, results, strict=True)),
        overall=TaskLoad.of("all", every),
    )
