"""Latency objectives (SLOs): budgets that maximise accuracy subject to them.

* :mod:`~thinkq.slo.objectives`: ``'p95<=8s'``, ``'gsm8k:mean<=2s'`` parsed into
  :class:`Objective`;
* :mod:`~thinkq.slo.evaluate`: what an objective measures at given budgets;
* :mod:`~thinkq.slo.search` and :mod:`~thinkq.slo.constrained`: :func:`solve_slo`,
  the path along alpha to the shadow price;
* :mod:`~thinkq.slo.result`: :class:`SloResult`.
"""

from thinkq.slo.constrained import DEFAULT_RTOL, solve_slo
from thinkq.slo.objectives import Objective, parse_objective, parse_objectives
from thinkq.slo.result import SloResult

__all__ = [
    "DEFAULT_RTOL",
    "Objective",
    "SloResult",
    "parse_objective",
    "parse_objectives",
    "solve_slo",
]
