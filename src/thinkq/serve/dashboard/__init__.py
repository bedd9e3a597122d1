"""The gateway's live page at ``/thinkq/`` (``docs/dashboard.md``).

* :mod:`~thinkq.serve.dashboard.history`: the ring of samples and the log of
  re-solves the gateway keeps (:class:`History`);
* :mod:`~thinkq.serve.dashboard.summary`: the budgets as a summary whose size does
  not grow with the task types;
* :mod:`~thinkq.serve.dashboard.frontier`: the accuracy-latency frontier at the
  current load, traced off the event loop and cached per plan;
* :mod:`~thinkq.serve.dashboard.auth`: signing in from a browser (a cookie derived
  from the key, good on ``GET /thinkq/...`` only);
* :mod:`~thinkq.serve.dashboard.page`: the routes, and ``static/``: the page's script
  and style sheet (with :mod:`thinkq.web`'s ``plot.js`` and ``thinkq.css``).
"""

from thinkq.serve.dashboard.auth import SignIn
from thinkq.serve.dashboard.history import History
from thinkq.serve.dashboard.page import POLL_SECONDS, Board, dashboard_routes

__all__ = ["POLL_SECONDS", "Board", "History", "SignIn", "dashboard_routes"]
