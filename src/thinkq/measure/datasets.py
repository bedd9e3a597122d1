"""The six benchmark sets of the paper's Table I, as lists of :class:`Item`.

:func:`load_dataset` reads AIME (2024 and 2025), GSM8K, GPQA Diamond, CRUXEval
(output prediction), BIG-Bench Hard and ARC-Challenge from local copies (``data_dir``,
laid out as ``shared/data/benchmarks``) or, without ``data_dir``, from Hugging Face
``datasets`` (the optional ``hf`` extra), and :func:`sample_items` draws a
deterministic sample. Every item carries the prompt the model sees, with the answer
format its grader (:mod:`thinkq.measure.graders`) reads; one builder per benchmark
(:mod:`._loaders`) makes them.

GPQA's authors ask that its questions not be reposted in plain text: the ``repr`` of
a GPQA item hides its prompt, and no message of this package quotes an item.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thinkq.errors import DatasetError
from thinkq.measure._loaders import load_items
from thinkq.measure.items import Item

__all__ = ["DATASETS", "load_dataset", "sample_items"]

#: The names :func:`load_dataset` accepts.
DATASETS: tuple[str, ...] = (
    "aime",
    "aime24",
    "aime25",
    "arc_challenge",
    "bbh",
    "cruxeval",
    "gpqa",
    "gsm8k",
)


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    n: int | None = None,
    seed: int = 0,
    subset: Sequence[str] | None = None,
) -> list[Item]:
    """Load a benchmark set, optionally a deterministic sample of it.

    Parameters
    ----------
    name:
        One of :data:`DATASETS`: ``"aime"`` (2024 and 2025, 60 problems), ``"aime24"``,
        ``"aime25"``, ``"gsm8k"`` (test, 1,319), ``"gpqa"`` (Diamond, 198),
        ``"cruxeval"`` (800), ``"bbh"`` (27 tasks, 6,511) or ``"arc_challenge"``
        (test, 1,172).
    data_dir:
        The local benchmarks folder (``gsm8k/test.jsonl``, ``aime/aime24.jsonl``,
        ``aime/aime25.jsonl``, ``gpqa/gpqa_diamond.csv.gz``, ``cruxeval/cruxeval.jsonl``,
        ``bbh/<task>.json``, ``arc_challenge/ARC-Challenge-Test.jsonl``), the
        benchmark's own folder, or its file. ``None``: load from Hugging Face, which
        needs the ``hf`` extra and a network connection.
    n:
        Sample this many items (see :func:`sample_items`); ``None``, or ``n`` at
        least the size of the set, gives every item in source order.
    seed:
        Seed of the sample.
    subset:
        BBH only: the task names to load (default: all 27).

    Raises
    ------
    DatasetError
        Unknown name or task, bad ``n``, a missing or malformed file, or the ``hf``
        extra missing where ``data_dir`` is ``None``.
    """
    if name not in DATASETS:
        raise DatasetError(
            f"name: unknown dataset {name!r} (one of {', '.join(DATASETS)})", field="name"
        )
    if subset is not None and name != "bbh":
        raise DatasetError(f"subset: only bbh has tasks to choose, not {name}", field="subset")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DatasetError(f"n: must be a positive integer or None, got {n!r}", field="n")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed: must be a non-negative integer, got {seed!r}", field="seed")
    directory = None if data_dir is None else Path(data_dir)
    if directory is not None and directory.is_file() and not _one_file(name, subset):
        raise DatasetError(
            f"data_dir: {name} spans several files; give their folder, not one file",
            field="data_dir",
        )
    return sample_items(load_items(name, directory, subset), n, seed=seed)


def _one_file(name: str, subset: Sequence[str] | None) -> bool:
    """Whether benchmark ``name`` (with ``subset``) is read from a single file."""
    if name == "aime":
        return False
    if name == "bbh":
        return subset is not None and (isinstance(subset, str) or len(subset) == 1)
    return True


def sample_items(items: Sequence[Item], n: int | None, *, seed: int = 0) -> list[Item]:
    """A deterministic sample of ``n`` items, in their original order.

    Each item gets a key from ``numpy.random.default_rng(seed).random(len(items))``
    (PCG64's stream is fixed across platforms and Python versions); the ``n`` items
    with the smallest keys are kept, so a sample of ``n`` items is contained in the
    sample of ``n + 1`` with the same seed. ``n`` of ``None``, or at least
    ``len(items)``, keeps every item.
    """
    if n is None or n >= len(items):
        return list(items)
    keys = np.random.default_rng(seed).random(len(items))
    chosen = np.sort(np.argsort(keys, kind="stable")[:n])
    return [items[int(i)] for i in chosen]
