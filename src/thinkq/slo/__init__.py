"""Latency objectives (SLOs): budgets that maximise accuracy subject to them.

* :mod:`~thinkq.slo.objectives`: ``'p95<=8s'``, ``'gsm8k:mean<=2s'`` parsed into
  :class:`Objective`;
* :mod:`~thinkq.slo.evaluate`: what an objective measures at given budgets;
* :mod:`~thinkq.slo.search` and :mod:`~thinkq.slo.constrained`: :func:`solve_slo`,
  the path along alpha to the shadow price (``docs/slo.md``);
* :mod:`~thinkq.slo.result`: :class:`SloResult`;
* :mod:`~thinkq.slo.frontier`: :func:`frontier`, accuracy against mean and p95 system
  time along alpha (:mod:`~thinkq.slo.figure` draws it; it needs matplotlib);
* :mod:`~thinkq.slo.times`: the default system-time law, :func:`thinkq.tails.system_times`.
"""

from thinkq.slo.constrained import DEFAULT_RTOL, solve_slo
from thinkq.slo.frontier import Frontier, FrontierPoint, frontier
from thinkq.slo.objectives import Objective, parse_objective, parse_objectives
from thinkq.slo.result import SloResult

__all__ = [
    "DEFAULT_RTOL",
    "Frontier",
    "FrontierPoint",
    "Objective",
    "SloResult",
    "frontier",
    "parse_objective",
    "parse_objectives",
    "solve_slo",
]
