"""The default system-time distribution of the SLO search: :func:`thinkq.tails.system_times`.

On the paper's server that is the exact FIFO M/G/1 law (``queries`` and ``seed`` are
unused); on a batched server a simulation of ``queries`` queries with ``seed``, the
same seed at every budget vector so that the path compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

from thinkq._typing import IntArray
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.slo.evaluate import Percentiles, TimesFunction
from thinkq.tails import system_times

__all__ = ["DEFAULT_QUERIES", "tails"]

#: Simulated queries per budget vector on a batched server.
DEFAULT_QUERIES = 200_000


def tails(
    *,
    answer_times: Sequence[Distribution] | None = None,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
) -> TimesFunction:
    """Budgets -> :func:`thinkq.tails.system_times` there, with these options."""

    def times(profile: Profile, budgets: IntArray) -> Percentiles:
        return system_times(profile, budgets, answer_times=answer_times, queries=queries, seed=seed)

    return times
