"""The plan of the server phase: which queries are asked at which concurrency level.

:func:`plan_levels` takes the first ``per_level`` queries of a seeded plan of the
grid (items x the budgets above 0; budget 0 decodes no thinking) and asks the same
ones at every level, the levels interleaved in :func:`rounds` (see
:mod:`thinkq.measure.levels`, which runs them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from thinkq.measure.items import Item
from thinkq.measure.runner import Query, plan

__all__ = [
    "BLOCK",
    "ROUNDS",
    "LevelKey",
    "LevelQuery",
    "checked_levels",
    "concurrency_levels",
    "plan_levels",
    "rounds",
]

#: The most rounds the levels are interleaved in, and the fewest queries a level's
#: block has per slot (a closed loop of n needs a queue well beyond n to keep n busy).
ROUNDS = 4
BLOCK = 4
#: (concurrency, task, item id, budget, run): one query of the server phase.
LevelKey = tuple[int, str, str, int, int]


def concurrency_levels(slots: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``slots``, then ``slots`` itself."""
    if slots < 1:
        raise ValueError(f"slots: must be >= 1, not {slots}")
    levels, n = [], 1
    while n < slots:
        levels.append(n)
        n *= 2
    return (*levels, slots)


def checked_levels(levels: Sequence[int], slots: int) -> tuple[int, ...]:
    """``levels`` sorted without repeats; ``ValueError`` naming ``levels`` when one is
    outside [1, ``slots``] or fewer than two are left (the slope of the law needs two)."""
    chosen = tuple(sorted(set(levels)))
    bad = [n for n in chosen if not 1 <= n <= slots]
    if bad:
        raise ValueError(f"levels: {bad[0]} is outside 1..{slots} (--slots)")
    if len(chosen) < 2:
        raise ValueError(f"levels: need at least two concurrency levels, got {list(chosen)}")
    return chosen


@dataclass(frozen=True, slots=True)
class LevelQuery:
    """One query of the grid asked at one concurrency level."""

    query: Query
    concurrency: int

    @property
    def key(self) -> LevelKey:
        return (self.concurrency, *self.query.key)


def plan_levels(
    items: Sequence[Item],
    budgets: Sequence[int],
    *,
    slots: int,
    per_level: int,
    seed: int,
    levels: Sequence[int] | None = None,
) -> list[LevelQuery]:
    """``per_level`` queries (budgets above 0) asked at each of ``levels`` (default
    :func:`concurrency_levels` of ``slots``).

    Raises ``ValueError`` (naming ``budgets``, ``per_level`` or ``levels``) when no
    budget is above 0, ``per_level`` is below 1 or a level is outside [1, slots].
    """
    chosen_levels = concurrency_levels(slots) if levels is None else checked_levels(levels, slots)
    positive = sorted({b for b in budgets if b > 0})
    if not positive:
        raise ValueError("budgets: the server phase needs a budget above 0 (0 decodes nothing)")
    if per_level < 1 or not items:
        raise ValueError(f"per_level: must be >= 1 queries, not {per_level}")
    runs = math.ceil(per_level / (len(items) * len(positive)))
    chosen = plan(items, positive, runs, seed=seed)[:per_level]
    count = rounds(per_level, slots)
    return [LevelQuery(q, n) for r in range(count) for n in chosen_levels for q in chosen[r::count]]


def rounds(per_level: int, slots: int) -> int:
    """How many rounds the levels are asked in: as many as give every level's block at
    least :data:`BLOCK` x ``slots`` queries, at most :data:`ROUNDS`."""
    return max(1, min(ROUNDS, per_level // (BLOCK * slots)))
