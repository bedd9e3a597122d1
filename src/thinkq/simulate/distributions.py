"""Distributions of the answer part of a service time (in the manner of Ciw).

A type-k query takes S_k = c_k l_k + X_k seconds: the thinking tokens take exactly
c_k l_k (budget forcing makes them deterministic) and the rest X_k (prefill and the
answer) varies from query to query with mean t0_k. Each distribution can both
``sample`` and report its analytic ``mean`` and ``variance``, so the simulator and the
Pollaczek-Khinchine formulas (via :meth:`thinkq.Profile.with_answer_times`) read the
same objects: E[S_k] = t_k(l_k) and E[S_k^2] = t_k(l_k)^2 + Var(X_k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from thinkq._typing import FloatArray

__all__ = ["Deterministic", "Distribution", "Empirical", "Lognormal", "Shifted"]


@runtime_checkable
class Distribution(Protocol):
    """A non-negative random time in seconds with known first two moments."""

    @property
    def mean(self) -> float:
        """E[X], seconds."""
        ...

    @property
    def variance(self) -> float:
        """Var(X), seconds squared."""
        ...

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` independent draws."""
        ...


@dataclass(frozen=True)
class Deterministic:
    """Always ``value`` seconds (the paper's model)."""

    value: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"value: expected a finite time >= 0, got {self.value!r}")

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return np.full(size, self.value)


@dataclass(frozen=True)
class Lognormal:
    """A lognormal time given by its ``mean`` (s) and coefficient of variation ``cv``."""

    mean: float
    cv: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and self.mean > 0):
            raise ValueError(f"mean: expected a finite time > 0, got {self.mean!r}")
        if not (math.isfinite(self.cv) and self.cv >= 0):
            raise ValueError(
                f"cv: expected a finite coefficient of variation >= 0, got {self.cv!r}"
            )

    @property
    def variance(self) -> float:
        return (self.cv * self.mean) ** 2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean) - sigma2 / 2.0
        return rng.lognormal(mu, math.sqrt(sigma2), size)


@dataclass(frozen=True)
class Empirical:
    """Resampling of measured times (for example answer latencies from records)."""

    samples: Sequence[float] | FloatArray
    _values: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = np.asarray(self.samples, dtype=np.float64).reshape(-1)
        if values.size == 0:
            raise ValueError("samples: expected at least one measured time")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("samples: times must be finite and >= 0")
        object.__setattr__(self, "_values", values)

    @property
    def mean(self) -> float:
        return float(np.mean(self._values))

    @property
    def variance(self) -> float:
        return float(np.var(self._values))

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self._values[rng.integers(0, self._values.size, size)]


@dataclass(frozen=True)
class Shifted:
    """``shift`` seconds (>= 0) plus a draw of ``base``: a fixed part, then the variable
    rest (a prompt stage's prompt, then the answer's decode)."""

    shift: float
    base: Distribution

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shift) and self.shift >= 0):
            raise ValueError(f"shift: expected a finite time >= 0, got {self.shift!r}")

    @property
    def mean(self) -> float:
        return self.shift + self.base.mean

    @property
    def variance(self) -> float:
        return self.base.variance

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self.shift + self.base.sample(rng, size)
