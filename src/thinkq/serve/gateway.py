"""The gateway without HTTP: admission, budgets, budgeted generation, bookkeeping.

A request's life: :meth:`Gateway.admit` counts the arrival for the estimator and
refuses it (:class:`OverloadedError`, HTTP 503) when the plan in force is overloaded or the
queue is full; :meth:`Gateway.complete` or :meth:`Gateway.stream` wait for a slot in
FIFO order (a client that disconnects first leaves the queue), read the budget of the
request's type from the plan in force when its service starts, generate upstream with
exactly that many thinking tokens (``force``) or at most that many (``cap``), release
the slot whatever happens and leave a :class:`~thinkq.serve.queue.Record` in the
books (:mod:`thinkq.serve.ledger`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from thinkq.errors import ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generation, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message, Template
from thinkq.profile import Profile
from thinkq.serve.controller import DEFAULT_HYSTERESIS, Controller, Plan
from thinkq.serve.estimator import Clock, Estimator
from thinkq.serve.ledger import Finished, Ledger
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Queue, Records
from thinkq.serve.refit import LatencyRefit
from thinkq.serve.routing import Router
from thinkq.serve.runs import DisconnectedError, Job, OverloadedError, Stream, pieces, wait_turn
from thinkq.serve.state import state

__all__ = ["DisconnectedError", "Gateway", "Job", "Mode", "OverloadedError", "Stream"]

Mode = Literal["force", "cap"]

log = logging.getLogger("thinkq.serve")


class Gateway:
    """Budgets applied to live traffic in front of one OpenAI-compatible server.

    Parameters
    ----------
    profile:
        The fitted profile: curves, alpha, l_max, prior rate and shares, routing rules.
    server:
        The upstream server and model.
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
        Requests served at once; requests allowed to wait.
    window:
        Seconds of history for the estimates and the measured mean system time.
    resolve_every:
        Seconds between re-solves (0: only when :meth:`resolve` is called).
    hysteresis:
        Relative gain in J required to switch budgets.
    refit:
        Whether to refit each type's latency line from observed service times
        (:mod:`thinkq.serve.refit`) and solve with it.
    clock:
        Monotonic time in seconds (tests inject their own).
    log_prompts:
        Whether the per-request log line includes the last user message.
    """

    def __init__(
        self,
        profile: Profile,
        server: Server,
        *,
        mode: Mode = "force",
        template: Template | None = None,
        suppress_ids: Sequence[int] | None = None,
        budget_field: str = "thinking_token_budget",
        concurrency: int = 1,
        max_queue: int = 64,
        window: float = 60.0,
        resolve_every: float = 5.0,
        hysteresis: float = DEFAULT_HYSTERESIS,
        refit: bool = False,
        clock: Clock = time.monotonic,
        log_prompts: bool = False,
    ) -> None:
        if not resolve_every >= 0:
            raise ValueError(f"resolve_every: must be >= 0 seconds, got {resolve_every!r}")
        self.profile = profile
        self.server = server
        self.mode = mode
        self.budget_field = budget_field
        self.resolve_every = resolve_every
        self.clock = clock
        self.router = Router(profile)
        self.estimator = Estimator(
            prior_rate=profile.rate, prior_shares=profile.share, window=window, clock=clock
        )
        self.refit = LatencyRefit(profile, window=window, clock=clock) if refit else None
        self.controller = Controller(
            profile, self.estimator, hysteresis=hysteresis, refit=self.refit
        )
        self.queue = Queue(concurrency=concurrency, max_queue=max_queue)
        self.records = Records(window=window, clock=clock)
        self.metrics = Metrics(profile.names)
        self.ledger = Ledger(
            profile.names, records=self.records, metrics=self.metrics, refit=self.refit,
            clock=clock, log_prompts=log_prompts,
        )  # fmt: skip
        self.forcer = Forcer(server, template=template, suppress_ids=suppress_ids)
        thinking = self.forcer.thinking
        self._verbatim = Template("verbatim", "{content}", "", (), thinking)
        self._loop: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Prepare budget forcing (tokenizer, template) and start re-solving."""
        if self.mode == "force":
            await self.forcer.prepare()
            await self.forcer.render([{"role": "user", "content": "ping"}])
        self.publish()
        if self.resolve_every > 0:
            self._loop = asyncio.create_task(self._resolving())

    async def stop(self) -> None:
        """Stop re-solving and close the upstream connections."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        await self.server.aclose()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _resolving(self) -> None:
        while True:
            await asyncio.sleep(self.resolve_every)
            self.resolve()

    def resolve(self) -> Plan:
        """Re-solve at the estimated load now and publish the plan."""
        plan = self.controller.resolve()
        if plan.switched:
            names = self.profile.names
            budgets = ", ".join(f"{n}={b}" for n, b in zip(names, plan.budgets, strict=True))
            log.info("budgets switched at rate %.4g/s: %s", plan.rate, budgets)
        self.publish()
        return plan

    def publish(self) -> None:
        """Bring the gauges up to date."""
        measured = self.records.mean_system_time()
        self.metrics.plan(self.controller.plan, measured=measured, waiting=self.queue.waiting)

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

        The other arguments are the job's (see :class:`~thinkq.serve.runs.Job`).

        Raises
        ------
        OverloadedError
            Even zero budgets are unstable at the estimated load, or the queue is full.
        """
        self.estimator.arrival(task)
        name = self.profile.names[task]
        plan = self.controller.plan
        if plan.overloaded:
            self.metrics.outcome(name, "rejected")
            raise OverloadedError(
                f"overloaded: the estimated load ({plan.utilization:.3g} at zero budgets) "
                "exceeds the server's capacity",
                retry_after=max(1, math.ceil(self.resolve_every)),
            )
        if self.queue.full():
            self.metrics.outcome(name, "rejected")
            mean_service = plan.utilization / plan.rate if plan.rate > 0 else 1.0
            drain = mean_service * (self.queue.waiting + 1) / self.queue.concurrency
            raise OverloadedError(
                f"overloaded: {self.queue.waiting} requests are already waiting",
                retry_after=max(1, math.ceil(drain)),
            )
        return Job(task, self.clock(), kind, messages, text, cue, sampling, seed)

    def _generator(self, job: Job) -> Forcer | Capper:
        if self.mode == "cap":
            return Capper(self.server, field=self.budget_field, sampling=job.sampling)
        return Forcer(
            self.server,
            template=self.forcer.template if job.kind == "chat" else self._verbatim,
            thinking=self.forcer.thinking,
            sampling=job.sampling,
            suppress_ids=self.forcer.suppress_ids,
        )

    async def complete(self, job: Job, disconnected: Callable[[], Awaitable[object]]) -> Generation:
        """Serve ``job`` in its turn and return the whole generation.

        Raises
        ------
        DisconnectedError
            The client left while waiting.
        ServerError
            The upstream failed (the slot is released all the same).
        """
        await self._turn(job, disconnected)
        started, budget = self.clock(), self.controller.plan.budgets[job.task]
        outcome, generation = "disconnected", None
        try:
            generation = await self._generator(job).generate(
                job.messages, budget, cue=job.cue, seed=job.seed
            )
            outcome = "ok"
        except ServerError:
            outcome = "upstream_error"
            raise
        finally:
            self.queue.release()
            self.ledger.finish(job, Finished(budget, started, generation), outcome)
        return generation

    async def stream(self, job: Job, disconnected: Callable[[], Awaitable[object]]) -> Stream:
        """Serve ``job`` in its turn as a :class:`Stream` of pieces.

        Waiting and the first upstream reply happen before this returns, so that a
        refusal or an upstream failure can still be an HTTP status.
        """
        await self._turn(job, disconnected)
        started, budget = self.clock(), self.controller.plan.budgets[job.task]
        source = pieces(self._generator(job), job, budget)
        try:
            first = await anext(source)
        except BaseException as exc:
            await source.aclose()
            self.queue.release()
            outcome = "upstream_error" if isinstance(exc, ServerError) else "disconnected"
            self.ledger.finish(job, Finished(budget, started, None), outcome)
            raise

        def close(generation: Generation | None, outcome: str) -> None:
            self.finish(job, Finished(budget, started, generation), outcome)

        return Stream(first, source, on_close=close)

    async def _turn(self, job: Job, disconnected: Callable[[], Awaitable[object]]) -> None:
        try:
            await wait_turn(self.queue, disconnected)
        except DisconnectedError:
            self.ledger.finish(job, Finished(0, self.clock(), None), "disconnected")
            raise

    def finish(self, job: Job, run: Finished, outcome: str) -> None:
        """Release the job's slot and leave its record."""
        self.queue.release()
        self.ledger.finish(job, run, outcome)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """What ``GET /thinkq/state`` returns (:func:`thinkq.serve.state.state`)."""
        return state(self)
