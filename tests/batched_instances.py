"""Random batched instances and a brute-force J for the batched solver's tests.

The brute force shares nothing with the solver but the delay law: J evaluated from its
definition (eq. 7 with :func:`thinkq.batching.delay`) on a dense grid (N = 2) or random
points (N = 3), whose best points are then polished by scipy's L-BFGS-B.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize

from thinkq import Profile
from thinkq.batching import UNLIMITED_SLOTS, Server, delay

__all__ = ["brute_force", "direct_objective", "loaded", "random_profile", "random_server"]


def random_profile(rng: np.random.Generator, n: int) -> Profile:
    a = rng.uniform(0.2, 0.9, n)
    return Profile.from_arrays(
        names=[f"k{i}" for i in range(n)],
        share=rng.dirichlet(np.ones(n)),
        A=a,
        b=np.exp(rng.uniform(math.log(1e-3), math.log(2e-2), n)),
        D=rng.uniform(0.0, 1.0 - a),
        t0=rng.uniform(0.02, 0.1, n),
        c=np.exp(rng.uniform(math.log(2e-3), math.log(1e-2), n)),
        variance=rng.choice([0.0, 0.5], n),
        rate=1.0,
        alpha=float(rng.uniform(10.0, 100.0)),
        max_tokens=2000,
    )


def random_server(rng: np.random.Generator) -> Server:
    draw = rng.random()
    slots = UNLIMITED_SLOTS if draw < 0.2 else int(rng.integers(2, 9 if draw < 0.6 else 65))
    shape = rng.integers(4)
    if shape == 3:
        return Server(slots, 0.0, 1.0)  # pure sharing
    return Server(slots, 1.0, (0.0, 0.1, 1.0)[shape])


def loaded(rng: np.random.Generator, profile: Profile, server: Server) -> Profile:
    """A rate at which the queue binds: C(B) at about the queue-free budgets' E[S]."""
    free = np.clip(np.log(profile.alpha * profile.A * profile.b / profile.c) / profile.b, 0, None)
    m1_free = float(np.dot(profile.share, profile.t0 + profile.c * free.clip(0, 2000)))
    m1_zero = float(np.dot(profile.share, profile.t0))
    capacity = min(server.max_capacity, 1e3)
    rate = rng.uniform(0.8, 3.0) * capacity / m1_free
    return profile.replace(rate=min(rate, 0.9 / m1_zero))


def direct_objective(profile: Profile, server: Server, budgets: np.ndarray) -> np.ndarray:
    """J at each row of ``budgets``, straight from the definition (eq. 7)."""
    p = profile
    t = p.t0 + p.c * budgets
    m1 = t @ p.share
    m2 = (t * t) @ p.share + float(np.dot(p.share, p.variance))
    acc = (p.A * -np.expm1(-p.b * budgets) + p.D) @ p.share
    times = np.array([delay(server, p.rate, a, s).system_time for a, s in zip(m1, m2, strict=True)])
    return np.asarray(p.alpha * acc - times)


def brute_force(profile: Profile, server: Server, rng: np.random.Generator) -> float:
    """The best J of a 100 x 100 grid (N = 2) or 4000 random points (N = 3), polished."""
    top = profile.max_tokens
    if profile.size == 2:
        axis = np.linspace(0.0, top, 100)
        points = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    else:
        points = rng.uniform(0.0, top, (4000, profile.size))
    values = direct_objective(profile, server, points)
    best = float(values.max())
    for i in np.argsort(values)[-3:]:
        with np.errstate(invalid="ignore"):  # finite differences across the edge: -inf
            found = minimize(
                lambda l: -float(direct_objective(profile, server, l[None, :])[0]),
                points[i],
                method="L-BFGS-B",
                bounds=[(0.0, top)] * profile.size,
            )
        if np.isfinite(found.fun):
            best = max(best, -float(found.fun))
    return best
