"""The distribution of the system time, not only its mean (issue 16; ``docs/slo.md``).

:func:`system_times` returns a :class:`SystemTimes`: percentiles, CDF values and
percentile intervals of the system time (wait plus service, seconds), of a random
query or of one query type.

* The paper's FIFO M/G/1 server: the exact law, by the Pollaczek-Khinchine (Benes)
  formula inverted on a lattice (:mod:`~thinkq.tails.waiting`), with the service
  mixture's atoms and lognormals kept in closed form (:mod:`~thinkq.tails.service`,
  :mod:`~thinkq.tails.residual`, :mod:`~thinkq.tails.exact`).
* A batched server (``profile.batched``): the simulator's exact sample quantiles with
  batch-means intervals (:mod:`~thinkq.tails.sampled`).
"""

from thinkq.tails.result import SystemTimes
from thinkq.tails.system import system_times

__all__ = ["SystemTimes", "system_times"]
