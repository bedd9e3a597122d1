"""A vectorised FIFO M/G/1 simulator of the paper's server (section IV), and the
batched server's.

Queries arrive as a Poisson stream at ``rate``; each is of type k with probability
pi_k and takes S = c_k l_k + X_k seconds, X_k deterministic (t0_k, the paper's
model) or drawn from an answer-time :mod:`distribution <thinkq.simulate.distributions>`.
Waiting times follow Lindley's recursion W_n = max(0, W_{n-1} + S_{n-1} - A_n),
solved without a Python loop per query: within a block, with Y the running sum of
S_{n-1} - A_n started from the carried wait, W = Y - min(0, running min of Y).
Blocks keep the sums short (no drift over 10^8 queries) and the memory bounded; the
wait and service at the end of a block carry over to the next.

A profile whose server decodes several queries at once (``profile.batched``) is
served event by event instead (:mod:`thinkq.simulate.batched`); one slot, or no
``[server]`` table, is Lindley's recursion as above.

Means are exact sums. Percentiles come from log-spaced histograms and confidence
intervals from batch means over contiguous batches (:mod:`thinkq.simulate.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.profile import Profile
from thinkq.simulate.answers import answer_distributions
from thinkq.simulate.batched import run_batched
from thinkq.simulate.distributions import Distribution
from thinkq.simulate.queueing import TypeSampler, draw_answer_times, lindley
from thinkq.simulate.results import BATCHES, Simulation, Tally, TaskStatistics

__all__ = ["Simulation", "TaskStatistics", "simulate"]

_BLOCK = 1 << 18


def simulate(
    profile: Profile,
    budgets: ArrayLike,
    *,
    queries: int = 10_000,
    seed: int | None = None,
    warmup: int | None = None,
    answer_times: Sequence[Distribution] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Simulate ``queries`` queries of the profile's server at ``budgets``.

    The server is the paper's FIFO M/G/1 queue, or with a ``[server]`` table of
    several slots the batched server of ``docs/batching.md``, simulated event by event.

    Parameters
    ----------
    profile:
        The instance: rate, shares and curves.
    budgets:
        Thinking tokens per type (as in :func:`thinkq.solve`).
    queries:
        Measured queries (after the warm-up).
    seed:
        Seed of numpy's default generator; the same seed gives the same result.
    warmup:
        Queries simulated first and discarded (the queue starts empty); default
        ``queries // 10``.
    answer_times:
        One distribution per type for the answer part X_k of the service time (mean
        t0_k). Default: the profile's own variability: deterministic (as in the
        paper) where a task's ``variance`` is 0, else lognormal with mean t0_k and
        that variance. The analytic figures use the same distributions' variances.
    progress:
        Called as ``progress(done, total)`` after each block of queries.

    Returns
    -------
    Simulation
        Means, percentiles, confidence intervals, utilisation, realised accuracy,
        per type, and the model's figures for comparison (P-K, or the batched law);
        with a ``[server]`` table also the server's mean batch and step time.
    """
    warm = _warmup(queries, warmup)
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,) or not np.all(np.isfinite(l)) or np.any(l < 0):
        raise ValueError(f"budgets: expected {profile.size} finite budgets >= 0")
    answers = answer_distributions(profile, answer_times)
    _check_stable(profile, l)
    server, served = profile.batched, profile
    rng = np.random.default_rng(seed)
    tick = None if progress is None else (lambda done: progress(done, warm + queries))
    if server is None:
        tally = _run(profile, l, answers, rng, _blocks(warm, queries), tick)
    else:
        tally = run_batched(profile, server, l, answers, rng, _blocks(warm, queries), tick)
    if answers is not None:
        served = profile.with_variance(np.array([d.variance for d in answers]))
    return tally.simulation(profile, l, analytic=served, warmup=warm, seed=seed)


def _warmup(queries: int, warmup: int | None) -> int:
    """The warm-up's length, after checking both counts (errors name the argument)."""
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < BATCHES:
        raise ValueError(f"queries: expected an integer >= {BATCHES}, got {queries!r}")
    warm = queries // 10 if warmup is None else warmup
    if isinstance(warm, bool) or not isinstance(warm, int) or warm < 0:
        raise ValueError(f"warmup: expected an integer >= 0, got {warmup!r}")
    return warm


def _check_stable(profile: Profile, budgets: FloatArray) -> None:
    """A one-line error naming ``budgets`` if the queue is unstable at them."""
    if model.utilization(profile, budgets) < 1.0:
        return
    server = profile.batched
    if server is None:
        raise ValueError("budgets: the queue is unstable at these budgets (rate * E[S] >= 1)")
    raise ValueError(
        "budgets: the queue is unstable at these budgets (rate * E[S] >= "
        f"C(B) = {server.load_limit(profile.rate):.6g}, the most work the {server.slots} slots"
        f" do{' less the prompts' if server.prompt else ''})"
    )


def _blocks(warmup: int, queries: int) -> Iterator[tuple[int, int, int]]:
    """(batch, first query, size) of each block: the warm-up (batch -1), then the batches."""
    edges = [warmup + queries * b // BATCHES for b in range(BATCHES + 1)]
    segments = [(-1, 0, warmup)] + [(b, edges[b], edges[b + 1]) for b in range(BATCHES)]
    for batch, first, last in segments:
        for start in range(first, last, _BLOCK):
            yield batch, start, min(_BLOCK, last - start)


def _run(
    profile: Profile,
    budgets: FloatArray,
    answers: Sequence[Distribution] | None,
    rng: np.random.Generator,
    blocks: Iterator[tuple[int, int, int]],
    tick: Callable[[int], None] | None,
) -> Tally:
    """Serve the queries block by block and add up the measured ones.

    ``tick(done)`` is called after each block with the queries served so far.
    """
    sampler = TypeSampler(profile.share)
    thinking = profile.c * budgets
    service_of = thinking + profile.t0
    correct_of = model.accuracy(profile, budgets)
    tally = Tally(profile.size)
    carry = (0.0, 0.0)  # the wait and the service of the last query so far
    for batch, start, size in blocks:
        gaps = rng.exponential(1.0 / profile.rate, size)
        types = sampler.draw(rng, size)
        service = service_of[types]
        if answers is not None:
            service = thinking[types] + draw_answer_times(answers, types, rng)
        wait, carry = lindley(gaps, service, carry)
        if tick is not None:
            tick(start + size)
        if batch < 0:
            continue
        n_k = np.bincount(types, minlength=profile.size)
        # a Bernoulli draw per query, summed per type: one binomial draw per type
        correct = rng.binomial(n_k, correct_of)
        if answers is None:
            sums: FloatArray = n_k * service_of
        else:  # bincount with weights sums floats (numpy's stubs say integers)
            sums = np.asarray(np.bincount(types, weights=service, minlength=profile.size), float)
        tally.add(batch, types, gaps, wait, service, counts=n_k, correct=correct, service_sums=sums)
    return tally
