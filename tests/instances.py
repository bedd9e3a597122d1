"""Random problem instances shared by the tests (fixed seeds, reproducible).

* :func:`random_profile` draws a profile whose optimum mixes the three KKT cases:
  types at 0, interior types and types at l_max;
* :func:`oracle_instances` is the fixed list the oracle tests run on;
* :func:`random_stable_point` draws a feasible, stable budget vector;
* :func:`profiles` is the hypothesis strategy of the property tests: wide parameter
  ranges (alpha 1e-2..1e4, l_max 0..1e6, b 1e-7..10, c 1e-6..10, t0 0..100, shares
  including 0 and 1e-12), always stable at zero budgets;
* :func:`profile_from_dict` reads the file format of ``hard_instances.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

from thinkq import Profile

__all__ = [
    "HARD_INSTANCES",
    "load_hard_instances",
    "oracle_instances",
    "profile_from_dict",
    "profiles",
    "random_profile",
    "random_stable_point",
]

FloatArray = NDArray[np.float64]

HARD_INSTANCES = Path(__file__).with_name("hard_instances.json")

#: Seed of the oracle comparison instances.
ORACLE_SEED = 20_260_110
ORACLE_COUNT = 32


def random_profile(
    rng: np.random.Generator,
    *,
    n: int | None = None,
    max_tokens: int | None = None,
    load: float | None = None,
    zero_shares: bool = False,
) -> Profile:
    """A random profile; ``load`` is lambda E[S(0)], the utilisation at zero budgets."""
    n = int(rng.integers(2, 41)) if n is None else n
    a = rng.uniform(0.05, 1.0, n)
    d = rng.uniform(0.0, 1.0, n) * (1.0 - a)
    b = 10.0 ** rng.uniform(-4.0, -1.0, n)
    t0 = rng.uniform(0.01, 2.0, n)
    c = 10.0 ** rng.uniform(-3.5, -1.5, n)
    share = rng.gamma(1.0, 1.0, n)
    if zero_shares:
        share[rng.random(n) < 0.2] = 0.0
        share[0] = max(share[0], 0.1)
    share = share / share.sum()
    load = rng.uniform(0.05, 0.8) if load is None else load
    if max_tokens is None:
        max_tokens = int(rng.choice([64, 256, 1024, 4096, 32768]))
    return Profile.from_arrays(
        names=[f"task{k}" for k in range(n)],
        share=share,
        A=a,
        b=b,
        D=d,
        t0=t0,
        c=c,
        rate=load / float(np.dot(share, t0)),
        alpha=float(10.0 ** rng.uniform(0.0, 3.0)),
        max_tokens=max_tokens,
    )


def oracle_instances() -> list[Profile]:
    """The fixed random instances of the oracle comparison (N from 2 to 40)."""
    rng = np.random.default_rng(ORACLE_SEED)
    return [random_profile(rng, zero_shares=i % 5 == 4) for i in range(ORACLE_COUNT)]


def random_stable_point(
    profile: Profile, rng: np.random.Generator, *, max_load: float = 0.999
) -> FloatArray:
    """A random point of [0, l_max]^N with lambda E[S] < ``max_load`` (< 1).

    A uniform point of the box is shrunk towards 0 when needed: E[S] is affine in l,
    so the scaled point hits a random utilisation between lambda E[S(0)] and the cap.
    """
    l_max = float(profile.max_tokens)
    kind = rng.integers(4)
    if kind == 0:
        point = rng.uniform(0.0, l_max, profile.size)
    elif kind == 1:  # many budgets at a bound
        point = rng.choice([0.0, l_max], profile.size) * (rng.random(profile.size) < 0.8)
        point = np.where(rng.random(profile.size) < 0.3, rng.uniform(0, l_max), point)
    else:  # log-uniform: small budgets matter when b is large
        point = np.minimum(l_max, 10.0 ** rng.uniform(-3.0, np.log10(l_max + 1.0), profile.size))
    base = float(np.dot(profile.share, profile.t0))
    growth = float(np.dot(profile.share * profile.c, point))
    room = max_load / profile.rate - base
    if growth > 0 and growth >= room:
        target = rng.uniform(0.0, 1.0) * room
        point = point * (target / growth)
    return point


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


@st.composite
def profiles(draw: st.DrawFn, *, max_n: int = 30, max_tokens_max: int = 1_000_000) -> Profile:
    """Hypothesis strategy: a valid profile that is stable at zero budgets."""
    n = draw(st.integers(1, max_n))
    a = [draw(st.floats(0.01, 1.0)) for _ in range(n)]
    d = [draw(st.floats(0.0, 1.0)) * (1.0 - x) for x in a]
    b = [draw(_log_uniform(1e-7, 10.0)) for _ in range(n)]
    c = [draw(_log_uniform(1e-6, 10.0)) for _ in range(n)]
    t0 = [draw(st.one_of(st.just(0.0), st.floats(1e-9, 100.0))) for _ in range(n)]
    share = [draw(st.one_of(st.just(0.0), st.just(1e-12), st.floats(1e-3, 1.0))) for _ in range(n)]
    if sum(share) <= 0:
        share[draw(st.integers(0, n - 1))] = 1.0
    total = sum(share)
    base = sum(s / total * t for s, t in zip(share, t0, strict=True))
    load = draw(st.floats(0.001, 0.99))
    # rate * E[S(0)] = load < 1; the cap keeps rate finite when E[S(0)] is tiny or 0
    rate = min(load / base, 1e4) if base > 0 else draw(_log_uniform(1e-3, 1e3))
    max_tokens = draw(st.one_of(st.just(0), st.integers(1, 100), st.integers(0, max_tokens_max)))
    return Profile.from_arrays(
        names=[f"t{k}" for k in range(n)],
        share=share,
        A=a,
        b=b,
        D=d,
        t0=t0,
        c=c,
        rate=rate,
        alpha=draw(_log_uniform(1e-2, 1e4)),
        max_tokens=max_tokens,
    )


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """A profile from the file format (rate, alpha, max_tokens, tasks list)."""
    tasks = data["tasks"]
    return Profile.from_arrays(
        names=[task["name"] for task in tasks],
        **{key: [task[key] for task in tasks] for key in ("share", "A", "b", "D", "t0", "c")},
        rate=data["rate"],
        alpha=data["alpha"],
        max_tokens=data["max_tokens"],
    )


def load_hard_instances() -> list[Profile]:
    """The instances of ``hard_instances.json`` (see find_hard_instances.py)."""
    data = json.loads(HARD_INSTANCES.read_text("utf-8"))
    return [profile_from_dict(entry) for entry in data["instances"]]
