"""The paper's experiments (section IV) and the what-if sweeps built the same way.

* :mod:`~thinkq.paper.experiments`: Table I and the numbers behind Fig. 2-4;
* :mod:`~thinkq.paper.sweep`: optimal budgets and their outcome across a range of
  ``rate`` or ``alpha`` (``thinkq sweep``);
* :mod:`~thinkq.paper.figures`: the figures drawn with matplotlib, saved as PNG and SVG;
* :mod:`~thinkq.paper.reproduce`: ``thinkq reproduce``, every table and figure and a
  report that compares them with the paper.

Only the first two are imported here: drawing needs matplotlib, which
``import thinkq`` does not load.
"""

from thinkq.paper.experiments import (
    PAPER_BUDGETS,
    PAPER_QUERIES,
    PAPER_UNIFORM_BUDGETS,
    Figure2,
    Figure3,
    Figure4,
    PolicyOutcome,
    figure2,
    figure3,
    figure4,
    table_one,
)
from thinkq.paper.sweep import SWEEP_PARAMETERS, Sweep, SweepPoint, sweep

__all__ = [
    "PAPER_BUDGETS",
    "PAPER_QUERIES",
    "PAPER_UNIFORM_BUDGETS",
    "SWEEP_PARAMETERS",
    "Figure2",
    "Figure3",
    "Figure4",
    "PolicyOutcome",
    "Sweep",
    "SweepPoint",
    "figure2",
    "figure3",
    "figure4",
    "sweep",
    "table_one",
]
