"""The service-time mixture S = S_K, K ~ share, as the tail computations need it.

Type k takes S_k = c_k l_k + X_k seconds. Its answer time X_k is a point mass
(:class:`~thinkq.simulate.Deterministic`), a lognormal
(:class:`~thinkq.simulate.Lognormal`) or the measured times of an
:class:`~thinkq.simulate.Empirical`. :class:`Mixture` keeps the point masses as atoms
(position, weight within its type, owning type) and the lognormals as shifted
lognormal components (shift c_k l_k, log-mean mu_k, log-sd sigma_k), so that every
CDF and every integral of a survival function below is a closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from thinkq._typing import FloatArray, IntArray
from thinkq.profile import Profile
from thinkq.simulate.answers import answer_distributions
from thinkq.simulate.distributions import Deterministic, Distribution, Empirical, Lognormal

__all__ = ["Mixture", "mixture"]

#: Normal scores beyond which a lognormal's mass is neglected (Phi(-9) = 1.1e-19).
Z_EDGE = 9.0


@dataclass(frozen=True)
class Mixture:
    """The service mixture: shares, atoms and shifted lognormal components.

    ``atom_at`` (s), ``atom_weight`` (probability within the owning type) and
    ``atom_type`` list the point masses; ``ln_shift`` (s), ``ln_mu``, ``ln_sigma`` and
    ``ln_type`` the lognormal parts (one per lognormal type, weight 1 within it).
    ``mean`` is E[S] and ``second`` E[S^2], both exact (seconds, seconds squared).
    """

    share: FloatArray
    atom_at: FloatArray
    atom_weight: FloatArray
    atom_type: IntArray
    ln_shift: FloatArray
    ln_mu: FloatArray
    ln_sigma: FloatArray
    ln_type: IntArray
    mean: float
    second: float

    @property
    def size(self) -> int:
        """N, the number of types."""
        return int(self.share.size)

    def type_means(self) -> FloatArray:
        """E[S_k] per type, seconds."""
        means = np.bincount(self.atom_type, self.atom_weight * self.atom_at, self.size)
        ln_mean = self.ln_shift + np.exp(self.ln_mu + self.ln_sigma**2 / 2)
        return np.asarray(means + np.bincount(self.ln_type, ln_mean, self.size), float)

    def edge(self, tail: float = Z_EDGE) -> float:
        """A time beyond which every type's service has (practically) no mass, s."""
        top = float(self.atom_at.max(initial=0.0))
        if self.ln_mu.size:
            top = max(top, float(np.max(self.ln_shift + np.exp(self.ln_mu + tail * self.ln_sigma))))
        return top

    def residual_tail(self, x: float) -> float:
        """P(R > x) = E[(S - x)^+] / E[S] of the equilibrium service time R, x in s."""
        weight = self.share[self.atom_type] * self.atom_weight
        excess = float(np.dot(weight, np.maximum(self.atom_at - x, 0.0)))
        if self.ln_mu.size:
            y, mu, sigma = x - self.ln_shift, self.ln_mu, self.ln_sigma
            m = np.exp(mu + sigma**2 / 2)
            with np.errstate(divide="ignore"):
                z = (np.log(np.maximum(y, 0.0)) - mu) / sigma
            part = np.where(y > 0, m * ndtr(sigma - z) - np.maximum(y, 0.0) * ndtr(-z), m - y)
            excess += float(np.dot(self.share[self.ln_type], np.maximum(part, 0.0)))
        return excess / self.mean


def mixture(
    profile: Profile, budgets: ArrayLike, answer_times: Sequence[Distribution] | None
) -> Mixture:
    """The service mixture of ``profile`` at ``budgets`` with these answer times.

    ``answer_times`` as in :func:`thinkq.simulate`: default the profile's own
    variability (deterministic where ``variance`` is 0, else lognormal).
    """
    l = np.asarray(budgets, dtype=np.float64)
    if l.shape != (profile.size,) or not np.all(np.isfinite(l)) or np.any(l < 0):
        raise ValueError(f"budgets: expected {profile.size} finite budgets >= 0")
    thinking = profile.c * l
    answers = answer_distributions(profile, answer_times)
    if answers is None:
        answers = [Deterministic(float(t)) for t in profile.t0]
    atoms: list[tuple[FloatArray, FloatArray, int]] = []
    lognormals: list[tuple[float, float, float, int]] = []
    for k, dist in enumerate(answers):
        shift = float(thinking[k])
        if isinstance(dist, Deterministic) or (isinstance(dist, Lognormal) and dist.cv == 0):
            atoms.append((np.array([shift + dist.mean]), np.ones(1), k))
        elif isinstance(dist, Lognormal):
            sigma2 = math.log1p(dist.cv**2)
            lognormals.append((shift, math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2), k))
        elif isinstance(dist, Empirical):
            values = np.sort(np.asarray(dist.samples, dtype=np.float64).reshape(-1))
            atoms.append((shift + values, np.full(values.size, 1.0 / values.size), k))
        else:
            raise ValueError(
                f"answer_times[{k}]: {type(dist).__name__} has no closed-form CDF; "
                "the exact tails take Deterministic, Lognormal or Empirical answer times"
            )
    return _assemble(profile, thinking, answers, atoms, lognormals)


def _assemble(
    profile: Profile,
    thinking: FloatArray,
    answers: Sequence[Distribution],
    atoms: list[tuple[FloatArray, FloatArray, int]],
    lognormals: list[tuple[float, float, float, int]],
) -> Mixture:
    """The :class:`Mixture` from its parts, with the exact first two moments."""
    share = np.asarray(profile.share, dtype=np.float64)
    means = thinking + np.array([d.mean for d in answers])
    variances = np.array([d.variance for d in answers])
    ln = np.array(lognormals, dtype=np.float64).reshape(-1, 4)
    at = [a for a, _, _ in atoms]
    return Mixture(
        share=share,
        atom_at=np.concatenate(at) if at else np.zeros(0),
        atom_weight=np.concatenate([w for _, w, _ in atoms]) if atoms else np.zeros(0),
        atom_type=np.concatenate([np.full(a.size, k, np.int64) for a, _, k in atoms])
        if atoms
        else np.zeros(0, np.int64),
        ln_shift=ln[:, 0].copy(),
        ln_mu=ln[:, 1].copy(),
        ln_sigma=ln[:, 2].copy(),
        ln_type=ln[:, 3].astype(np.int64),
        mean=float(np.dot(share, means)),
        second=float(np.dot(share, means**2 + variances)),
    )
