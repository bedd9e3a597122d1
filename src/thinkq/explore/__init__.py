"""The what-if page (``thinkq explore``): drag rate, alpha, l_max and slots, see the budgets.

Each move asks one small JSON endpoint for :func:`thinkq.solve` at the new settings
(the integer budgets ``thinkq solve`` prints), the figures of the queue, and the
accuracy-latency frontier (:func:`thinkq.slo.frontier.frontier`) with the operating
point on it. ``docs/explore.md`` describes the page and the endpoint's JSON.

:mod:`~thinkq.explore.settings` reads and applies the settings,
:mod:`~thinkq.explore.whatif` answers one, :mod:`~thinkq.explore.page` builds the page
and :mod:`~thinkq.explore.app` serves both.
"""

from thinkq.explore.app import create_app
from thinkq.explore.settings import Settings, apply, describe, parse, saturation_rate
from thinkq.explore.whatif import what_if

__all__ = ["Settings", "apply", "create_app", "describe", "parse", "saturation_rate", "what_if"]
