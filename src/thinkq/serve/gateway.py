"""The gateway without HTTP: admission, budgets, budgeted generation, state.

:meth:`Gateway.admit` counts an arrival and refuses it (HTTP 503) when the server cannot
take it now (:mod:`thinkq.serve.admission`); :meth:`Gateway.complete` and
:meth:`Gateway.stream` serve it in :func:`~thinkq.serve.request.served` with exactly the
budget's thinking tokens (``force``, :class:`~thinkq.measure.forcing.Forcer`) or at most
that many (``cap``, :class:`~thinkq.measure.cap.Capper`) on the least-loaded replica.
Periodic work waits for no request to be in progress (``books.activity``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Any, Literal

from thinkq.errors import OverloadedError
from thinkq.measure.generation import Generation, Piece, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message, Template
from thinkq.profile import Profile
from thinkq.serve import dispatch
from thinkq.serve.admission import Admission
from thinkq.serve.controller import DEFAULT_HYSTERESIS, Controller, Plan
from thinkq.serve.dashboard.history import History
from thinkq.serve.disconnect import Disconnected, until_disconnected
from thinkq.serve.estimator import Clock, Estimator
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Queue, Records
from thinkq.serve.refit import LatencyRefit
from thinkq.serve.replicas import DEFAULT_PROBE_EVERY, Replicas
from thinkq.serve.request import Books, Job, Turn, served
from thinkq.serve.routing import Router
from thinkq.serve.slo import measured, resolved
from thinkq.serve.status import Shared, announce, state
from thinkq.slo import Objective

#: Seconds of observation the profile's rate is worth to the estimator at start.
PRIOR_TIME = 60.0

__all__ = ["Gateway", "Mode"]
Mode = Literal["force", "cap"]

log = logging.getLogger("thinkq.serve")


class Gateway:
    """Budgets applied to live traffic in front of OpenAI-compatible servers.

    Parameters
    ----------
    profile:
        The fitted profile: curves, alpha, l_max, prior rate and shares, routing rules.
    server:
        The upstream server and model, or several replicas of it: one central queue in
        front of all their slots, probed every ``probe_every`` seconds (with more than
        one) and taken out of rotation when they fail (:mod:`thinkq.serve.replicas`).
    mode:
        ``"force"``: exact budgets by budget forcing over ``/v1/completions``;
        ``"cap"``: the server's native budget field, an upper bound.
    template:
        The chat template for ``force`` mode; ``None`` has the server render it.
    suppress_ids:
        Token ids that end thinking, suppressed in ``force`` mode (default: found
        with the server's tokenizer at start).
    budget_field:
        The request field of ``cap`` mode (``thinking_token_budget`` for vLLM,
        ``thinking_budget_tokens`` for llama.cpp).
    concurrency, max_queue:
        Requests served at once by each replica; requests allowed to wait.
    window:
        Seconds of history for the estimates and the measured mean system time.
    resolve_every:
        Seconds between re-solves (0: only when :meth:`resolve` is called).
    max_wait:
        Predicted wait always admitted, seconds (``None``: ``resolve_every``, or 5 if
        that is 0; see :mod:`thinkq.serve.admission`).
    hysteresis:
        Relative gain in J required to switch budgets.
    refit:
        Whether to refit each type's latency line from observed service times
        (:mod:`thinkq.serve.refit`) and solve with it.
    clock:
        Monotonic time in seconds (tests inject their own).
    log_prompts:
        Whether the per-request log line includes the last user message.
    objectives:
        Latency objectives (``'p95<=8s'``) that replace the profile's alpha
        (:mod:`thinkq.serve.slo`); empty: none.
    """

    def __init__(
        self,
        profile: Profile,
        server: Server | Sequence[Server],
        *,
        mode: Mode = "force",
        template: Template | None = None,
        suppress_ids: Sequence[int] | None = None,
        budget_field: str = "thinking_token_budget",
        concurrency: int = 1,
        max_queue: int = 64,
        window: float = 60.0,
        resolve_every: float = 5.0,
        max_wait: float | None = None,
        hysteresis: float = DEFAULT_HYSTERESIS,
        refit: bool = False,
        clock: Clock = time.monotonic,
        log_prompts: bool = False,
        objectives: Sequence[str | Objective] = (),
        probe_every: float = DEFAULT_PROBE_EVERY,
    ) -> None:
        if not resolve_every >= 0:
            raise ValueError(f"resolve_every: must be >= 0 seconds, got {resolve_every!r}")
        servers = (server,) if isinstance(server, Server) else tuple(server)
        self.profile, self.server = profile, servers[0]
        self.mode, self.budget_field = mode, budget_field
        self.resolve_every, self.clock = resolve_every, clock
        self.router = Router(profile)
        self.estimator = Estimator(
            prior_rate=profile.rate, prior_shares=profile.share, window=window, clock=clock,
            horizon=resolve_every if 0 < resolve_every < window else None,
            prior_time=PRIOR_TIME,
        )  # fmt: skip
        self.refit = LatencyRefit(profile, window=window, clock=clock) if refit else None
        slo = resolved(profile, objectives) if objectives else ()
        self.controller = Controller(
            profile, self.estimator, hysteresis=hysteresis, refit=self.refit, objectives=slo,
            replicas=len(servers),
        )  # fmt: skip
        self.queue = Queue(concurrency=concurrency * len(servers), max_queue=max_queue, clock=clock)
        self.queue.keep_work(profile.batched if len(servers) == 1 else None)  # solo seconds
        self.admission = Admission(
            self.controller, self.estimator, self.queue, clock=clock,
            max_wait=(resolve_every or 5.0) if max_wait is None else max_wait,
        )  # fmt: skip
        self.records, self.history = Records(window=window, clock=clock), History(clock=clock)
        self.metrics = Metrics(profile.names, [str(o) for o in slo])
        self.books = Books(
            profile.names, records=self.records, metrics=self.metrics, refit=self.refit,
            clock=clock, log_prompts=log_prompts,
        )  # fmt: skip
        self.replicas = Replicas.over(
            servers, template=template, suppress_ids=suppress_ids, budget_field=budget_field,
            queue=self.queue, probe_every=probe_every, changed=self._replicas_changed,
        )  # fmt: skip
        self.replicas.register(self.metrics.registry)
        self.forcer, self.capper = self.replicas.all[0].forcer, self.replicas.all[0].capper
        #: Shared with other gateways (:meth:`thinkq.fleet.Member.joining`), or ``None``.
        self.fleet: Shared | None = None
        self._loop: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Prepare budget forcing (tokenizer, template) and start re-solving."""
        if self.mode == "force":
            await self.forcer.prepare()
            await self.forcer.render([{"role": "user", "content": "ping"}])
        self.publish()
        self.history.resolved(self.controller.plan, self)  # the plan at start
        if self.resolve_every > 0:
            self._loop = asyncio.create_task(self.fleet.run() if self.fleet else self._resolving())
        self.replicas.start()  # every replica's forcer with the first's suppressed ids

    async def stop(self) -> None:
        """Stop re-solving, log the request lines held and close the upstream connections."""
        self.books.lines.flush()
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        await self.replicas.stop()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _resolving(self) -> None:
        while True:
            await asyncio.sleep(self.resolve_every)
            await self.books.activity.quiet()  # no request waits for the re-solve,
            plan = self.controller.resolve()
            await self.books.activity.quiet()  # nor for its gauges and log
            self.announce(plan)

    def _replicas_changed(self, up: int) -> None:
        self.controller.replicas = up  # the plan for the replicas up (the queue has resized)
        self.resolve()

    def resolve(self) -> Plan:
        """Re-solve at the estimated load now and publish the plan."""
        return self.announce(self.controller.resolve())

    def announce(self, plan: Plan) -> Plan:
        """Log what ``plan`` (now in force) changed and bring the gauges up to date."""
        self.queue.stall = plan.server.prompt if plan.server is not None else 0.0
        announce(plan, self.profile.names, log)
        self.publish()
        self.history.resolved(plan, self)
        return plan

    def publish(self) -> None:
        """Bring the gauges up to date."""
        self.metrics.plan(
            self.controller.plan, measured=self.records.mean_system_time(),
            waiting=self.queue.waiting, batch=self.records.mean_batch(),
        )  # fmt: skip
        slo = self.controller.plan.slo
        if slo is not None:
            self.metrics.slo(slo, measured(slo.objectives, self.records.recent()))

    # ------------------------------------------------------------------ requests

    def admit(
        self,
        task: int,
        *,
        kind: Literal["chat", "completion"],
        messages: list[Message],
        text: str,
        cue: Cue,
        sampling: Sampling,
        seed: int | None = None,
    ) -> Job:
        """Count an arrival of type ``task`` and admit it as a :class:`Job`, or refuse it.

        The other arguments are the job's (see :class:`~thinkq.serve.request.Job`).

        Raises
        ------
        OverloadedError
            The predicted wait exceeds the bound (:mod:`thinkq.serve.admission`), or
            the queue is full (:class:`~thinkq.errors.QueueFullError`).
        """
        try:
            self.admission.admit(task, text)
        except OverloadedError:
            self.metrics.outcome(self.profile.names[task], "rejected")
            raise
        return Job(task, self.clock(), kind, messages, text, cue, sampling, seed)

    def _served(self, job: Job, disconnected: Disconnected) -> AbstractAsyncContextManager[Turn]:
        return served(
            job, queue=self.queue, books=self.books, disconnected=disconnected,
            budget=self.admission.budget,
        )  # fmt: skip

    async def complete(self, job: Job, disconnected: Disconnected) -> Generation:
        """Serve ``job`` in its turn and return the whole generation.

        ``disconnected()`` returns when the client has gone; the request then leaves
        the queue, or its generation is cancelled.

        Raises
        ------
        DisconnectedError
            The client left first.
        ServerError
            The upstream failed.
        """
        async with self._served(job, disconnected) as turn:
            work = dispatch.generate(self.replicas, job, turn.budget, self.mode)
            turn.generation = await until_disconnected(work, disconnected)
        return turn.generation

    async def stream(self, job: Job, disconnected: Disconnected) -> AsyncGenerator[Piece]:
        """Serve ``job`` in its turn as pieces: thinking, answer, then ``done``.

        The slot is held until this generator ends or is closed (the client left).
        Waiting happens at the first :func:`anext`, so that a refusal or a failure of
        the first upstream reply can still be an HTTP status.

        Raises
        ------
        DisconnectedError
            The client left while waiting.
        ServerError
            The upstream failed (before or after the first piece).
        """
        async with self._served(job, disconnected) as turn:
            pieces = dispatch.stream(self.replicas, job, turn.budget, self.mode)
            async with aclosing(pieces):
                async for piece in pieces:
                    if piece.generation is not None:
                        turn.generation = piece.generation
                    yield piece

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """What ``GET /thinkq/state`` returns (:func:`thinkq.serve.status.state`)."""
        return state(self)
