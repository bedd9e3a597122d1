"""The gateway: thinkq's budgets applied to live traffic (``thinkq serve``).

Put it in front of any OpenAI-compatible server (vLLM, SGLang, llama.cpp): each
request gets its type's optimal thinking budget, enforced by budget forcing
(``force``) or the server's native budget field (``cap``); requests wait in the
gateway's FIFO queue (the model's M/G/1 queue with ``concurrency = 1``; with several
``--upstream`` replicas one queue in front of all their slots, M/G/c, and failover:
:mod:`thinkq.serve.replicas`); the budgets are re-solved as the load moves;
impossible load is refused with 503.

:class:`Gateway` is the logic, :func:`create_app` its HTTP face (Starlette), and
:func:`run_load` a Poisson load generator to measure it (``thinkq loadtest``);
:func:`upstream_transport` gives the upstream connections ``thinkq serve`` uses.

The path of one request, top to bottom:

1. :mod:`thinkq.serve.app`: the body is read (413 past the limit), parsed and
   checked (:mod:`thinkq.serve.openai`, 400), and typed (:mod:`thinkq.serve.routing`);
   every refusal or upstream failure becomes its status in one place.
2. :meth:`Gateway.admit <thinkq.serve.gateway.Gateway.admit>` counts the arrival and
   admits it as a :class:`~thinkq.serve.request.Job`, or refuses it (503: a full
   queue, or more work queued than the bound, :mod:`thinkq.serve.admission`).
3. :meth:`Gateway.complete <thinkq.serve.gateway.Gateway.complete>` or
   :meth:`Gateway.stream <thinkq.serve.gateway.Gateway.stream>` serve it inside
   :func:`~thinkq.serve.request.served`, the one owner of its slot: it waits for the
   turn (:class:`Queue`), reads the budget in force, and on the way out, however the
   request ends, gives the slot back and writes its record (metrics, window, refit,
   log line) exactly once.
4. The generation itself (:mod:`thinkq.serve.dispatch`: on the replica with the
   fewest in flight, again on another if its connection fails before any byte
   reached the client): :class:`~thinkq.measure.forcing.Forcer` (``force``) or
   :class:`~thinkq.measure.cap.Capper` (``cap``) over
   :class:`~thinkq.measure.server.Server`, one of each per replica, with the
   request's sampling passed per call.
5. Back in :mod:`thinkq.serve.app`: the OpenAI response, or the stream of chunks
   (:mod:`thinkq.serve.openai`); closing the stream ends the request.

Off that path: the estimator, controller and refit (re-solving the budgets), the
metrics registry, and the load generator.
"""

from thinkq.errors import RoutingError
from thinkq.serve.app import create_app
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Estimate, Estimator
from thinkq.serve.gateway import Gateway
from thinkq.serve.loadtest import LoadResult, TaskLoad, run_load
from thinkq.serve.queue import Queue, Record
from thinkq.serve.routing import Router
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
