"""The gateway: thinkq's budgets applied to live traffic (``thinkq serve``).

Put it in front of any OpenAI-compatible server (vLLM, SGLang, llama.cpp): each
request gets its type's optimal thinking budget, enforced by budget forcing
(``force``) or the server's native budget field (``cap``); requests wait in the
gateway's FIFO queue (the model's M/G/1 queue with ``concurrency = 1``); the budgets
are re-solved as the load moves; impossible load is refused with 503.

:class:`Gateway` is the logic, :func:`create_app` its HTTP face (Starlette), and
:func:`run_load` a Poisson load generator to measure it (``thinkq loadtest``);
:func:`upstream_transport` gives the upstream connections ``thinkq serve`` uses.
"""

from thinkq.serve.app import create_app
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Estimate, Estimator
from thinkq.serve.gateway import Gateway
from thinkq.serve.loadtest import LoadResult, TaskLoad, run_load
from thinkq.serve.queue import Queue, Record
from thinkq.serve.routing import Router, RoutingError
from thinkq.serve.upstream import upstream_transport

__all__ = [
    "Controller",
    "Estimate",
    "Estimator",
    "Gateway",
    "LoadResult",
    "Plan",
    "Queue",
    "Record",
    "Router",
    "RoutingError",
    "TaskLoad",
    "create_app",
    "run_load",
    "upstream_transport",
]
