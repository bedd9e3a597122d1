"""Random problem instances for the benchmarks: fixed seeds, any size N.

:func:`random_profile` draws a profile of N task types whose optimum mixes the three
KKT cases of eq. (23): types held at 0 tokens, interior types, and types at l_max.
The same ``(n, seed)`` always gives the same profile (numpy's PCG64 generator), so
other benchmarks can reuse the instances of ``solver.py`` by importing
:func:`benchmark_profile`::

    from instances import benchmark_profile   # with benchmarks/ on sys.path
    profile = benchmark_profile(10_000)

Parameter ranges (per type, independently): accuracy gain A ~ U(0.05, 1), floor
D ~ U(0, 1 - A), rate constant b log-uniform in [1e-4, 1e-1] per token, fixed time
t0 ~ U(0.05, 2) s, time per token c log-uniform in [1e-4, 1e-2] s, share pi from a
Gamma(1) draw (then normalised). The operating point: l_max = 4096 tokens, alpha = 30
(as in the paper) and the arrival rate chosen so that the load at zero budgets is
lambda E[S(0)] = ``load`` (default 0.3).

Two families use these draws:

* the standard instances (``benchmark_profile(n)``): alpha = 30, load 0.3; the
  optimum runs the server at about 50% utilisation;
* the stress instances (``benchmark_profile(n, stress=True)``): accuracy weighted ten
  times more (alpha = 300) at load 0.6, so the optimum runs at about 87%
  utilisation and the queue couples the types strongly. The paper's fixed point (24)
  leaves the stability region on these in its first step.
"""

from __future__ import annotations

import numpy as np

from thinkq import Profile, paper_profile

__all__ = [
    "DEFAULT_LOAD",
    "DEFAULT_SEED",
    "STRESS_ALPHA",
    "STRESS_LOAD",
    "STRESS_SEED",
    "benchmark_profile",
    "random_profile",
]

#: Seed of the standard instances; instance N uses ``DEFAULT_SEED + N``.
DEFAULT_SEED = 20_260_110
#: lambda E[S(0)]: the utilisation at zero budgets.
DEFAULT_LOAD = 0.3
#: Seed, load and accuracy weight of the stress instances (seed ``STRESS_SEED + N``).
STRESS_SEED = 20_260_111
STRESS_LOAD = 0.6
STRESS_ALPHA = 300.0
_MAX_TOKENS = 4096
_ALPHA = 30.0


def random_profile(
    n: int,
    seed: int,
    *,
    load: float = DEFAULT_LOAD,
    max_tokens: int = _MAX_TOKENS,
    alpha: float = _ALPHA,
) -> Profile:
    """A random profile of ``n`` task types drawn from ``seed`` (see the module doc).

    Parameters
    ----------
    n:
        Number of task types N (>= 1).
    seed:
        Seed of ``numpy.random.default_rng``.
    load:
        lambda E[S(0)] in (0, 1): the utilisation when every budget is 0.
    max_tokens:
        l_max, tokens.
    alpha:
        Accuracy weight, per second of mean system time.
    """
    if n < 1:
        raise ValueError(f"n: expected a positive number of task types, got {n!r}")
    if not 0.0 < load < 1.0:
        raise ValueError(f"load: expected a utilisation in (0, 1), got {load!r}")
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.05, 1.0, n)
    d = rng.uniform(0.0, 1.0, n) * (1.0 - a)
    b = 10.0 ** rng.uniform(-4.0, -1.0, n)
    t0 = rng.uniform(0.05, 2.0, n)
    c = 10.0 ** rng.uniform(-4.0, -2.0, n)
    share = rng.gamma(1.0, 1.0, n)
    share /= share.sum()
    return Profile.from_arrays(
        names=[f"task{k}" for k in range(n)],
        share=share,
        A=a,
        b=b,
        D=d,
        t0=t0,
        c=c,
        rate=load / float(np.dot(share, t0)),
        alpha=alpha,
        max_tokens=max_tokens,
    )


def benchmark_profile(n: int, *, stress: bool = False) -> Profile:
    """The benchmark instance of size ``n`` (see the module doc).

    Standard: the paper's Table I for n = 6, else a random profile. Stress: always a
    random profile, at alpha = 300 and load 0.6.
    """
    if stress:
        return random_profile(n, STRESS_SEED + n, load=STRESS_LOAD, alpha=STRESS_ALPHA)
    if n == 6:
        return paper_profile()
    return random_profile(n, DEFAULT_SEED + n)
