"""Screening: most points of the path decided on coarse lattices, the exact law only
where the decision could depend on it.

A percentile objective ``pq <= t`` holds exactly when P(T <= t) >= q. The exact law
(:func:`thinkq.tails.system_times`) puts E[S] / 1024 per lattice cell; at E[S] / 256
and E[S] / 128 the same computation costs a fraction of it. The CDF at the target on
the two coarse lattices, F_256(t) and F_128(t), estimates the error of F_256(t): the
lattice error shrinks with the step, so |F_256 - F_1024| is a fraction of
|F_128 - F_256| where that difference is not a chance near-zero. The point is decided
on the coarse lattices when, for every percentile objective,

    |F_256(t) - q| > max(FACTOR |F_128(t) - F_256(t)|, FLOOR),

and the coarse percentile lies on the same side of t, farther than NEAR from it;
else the exact law is computed. Far from the boundary (|F_256(t) - q| > FAR) the
second lattice is skipped. On 1.92 million (instance, target) pairs drawn near the
decision boundary (two sets of 40 random profiles with 2-6 types, l_max 60 to
2,000, utilisation 0.05-0.95, deterministic and lognormal answer times, overall and
per type; ``python benchmarks/slo.py --screen-check 40`` is the second set), the
rule never decided differently from the exact law with FACTOR 4 and FLOOR 1e-6
(with FLOOR 1e-9 or 1e-7 it did, 3 and 1 times; with the lattices E[S] / 64 and
/ 128, 5 times); it runs with twice both. The coarse values steer the search along
alpha (they decide and interpolate), the exact law gives every value reported, and
:func:`thinkq.slo.solve_slo` checks the answer with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from thinkq._typing import IntArray
from thinkq.profile import Profile
from thinkq.simulate.distributions import Distribution
from thinkq.slo.evaluate import Measured, Target, mean_values
from thinkq.tails import SystemTimes, system_times

__all__ = ["COARSE", "FACTOR", "FAR", "FLOOR", "MAX_TYPES", "NEAR", "Screen"]

#: The screen runs for at most this many types: beyond, the exact law's cost is in
#: the types (the mixture and the CDF's terms), not the lattice, and the screen
#: would only add to it.
MAX_TYPES = 40
#: The coarse percentile's search: relative bracket, steps, doublings from the target.
_RELATIVE, _MAX_STEPS, _MAX_DOUBLINGS = 1e-10, 200, 1100
#: Lattice cells per mean service time of the two screening lattices.
COARSE = (128, 256)
#: The margin in probability: this many times the coarse lattices' disagreement ...
FACTOR = 8.0
#: ... and at least this much.
FLOOR = 2e-6
#: A coarse percentile this close to its target (relative) is left to the exact law:
#: ten times the distance at which the search stops (``search.VALUE_RTOL``).
NEAR = 1e-4
#: Beyond this distance in probability F_256 alone decides: 90 times the largest
#: |F_256 - F_1024| seen on the instances above (1.1e-4).
FAR = 1e-2


class Screen:
    """The screen of ``targets`` on ``profile`` (the paper's server) with these
    answer times: budgets -> coarse :class:`Measured` (``exact`` False), or None where
    the exact law must decide."""

    def __init__(
        self,
        profile: Profile,
        targets: Sequence[Target],
        answer_times: Sequence[Distribution] | None,
    ) -> None:
        self.profile, self.targets, self.answer_times = profile, targets, answer_times

    def __call__(self, budgets: IntArray) -> Measured | None:
        return self._decide(budgets, values=True)

    def holds(self, budgets: IntArray) -> bool:
        """Whether every objective holds at ``budgets``, decided on the coarse
        lattices without the percentiles' values (False: undecided or fails)."""
        found = self._decide(budgets, values=False)
        return found is not None and found.feasible

    def _law(self, budgets: IntArray, resolution: int) -> SystemTimes:
        return system_times(
            self.profile, budgets, answer_times=self.answer_times, resolution=resolution
        )

    def _decide(self, budgets: IntArray, *, values: bool) -> Measured | None:
        found = mean_values(self.profile, budgets, self.targets)
        if isinstance(found, Measured):
            return found
        fine = rough = None
        for i, target in enumerate(self.targets):
            p = target.objective.percentile
            if p is None:
                continue
            t, q = target.objective.target, p / 100.0
            fine = fine or self._law(budgets, COARSE[1])
            f_fine = fine.cdf(t, target.task)
            if not abs(f_fine - q) > FAR:
                rough = rough or self._law(budgets, COARSE[0])
                margin = max(FACTOR * abs(f_fine - rough.cdf(t, target.task)), FLOOR)
                if not abs(f_fine - q) > margin:
                    return None
            if not values:
                found[i] = t if f_fine >= q else math.inf  # only its side of t
                continue
            found[i] = _percentile(fine, q, target.task, t, f_fine)
            if (found[i] <= t) != (f_fine >= q) or not math.isfinite(found[i]):
                return None
            if abs(found[i] / t - 1.0) <= NEAR:  # the search may stop here: exactly
                return None
        feasible = all(v <= t.objective.target for v, t in zip(found, self.targets, strict=True))
        return Measured(tuple(found), feasible, None if fine is None else fine.method, exact=False)


def _percentile(law: SystemTimes, q: float, task: int | None, t: float, f_t: float) -> float:
    """The smallest time with P(T <= time) >= q on ``law`` to a relative 1e-10 (inf if
    none is found), from F(t) = ``f_t`` at the target: a bracket by doubling or
    halving from t, then regula falsi (Illinois) with a bisection every third step.
    Scalar, so cheaper than :meth:`SystemTimes.percentile` for a screening value."""

    def excess(x: float) -> float:
        return law.cdf(x, task) - q

    a, b, fa, fb = t, t, f_t - q, f_t - q
    for _ in range(_MAX_DOUBLINGS):  # F(a) < q <= F(b)
        if fb < 0:
            a, fa, b = b, fb, 2 * b
            fb = excess(b)
        elif fa >= 0:
            b, fb, a = a, fa, a / 2
            fa = excess(a)
        else:
            break
    if not fa < 0 <= fb:
        return math.inf
    side = 0
    for step in range(_MAX_STEPS):
        if b - a <= _RELATIVE * b:
            break
        x = b - fb * (b - a) / (fb - fa) if step % 3 != 2 else (a + b) / 2
        if not a < x < b:
            x = (a + b) / 2
        fx = excess(x)
        if fx >= 0:
            b, fb, fa = x, fx, fa / 2 if side == 1 else fa
            side = 1
        else:
            a, fa, fb = x, fx, fb / 2 if side == -1 else fb
            side = -1
    return b
