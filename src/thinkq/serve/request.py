"""One gateway request, from admission to its record: what it asks, its slot, its books.

A request is admitted as a :class:`Job`. :func:`served` is the one owner of its slot:
an async context that waits for the request's turn in FIFO order (a client that
leaves first leaves the queue: :class:`~thinkq.errors.DisconnectedError`), holds the
slot for the body of the block, and on the way out, however the body ends (a reply,
an upstream failure, a client that left, a cut stream, a cancelled task), releases
the slot and writes the request's :class:`~thinkq.serve.queue.Record`, both exactly
once and in one place. :func:`until_disconnected` ends a plain request's service
when its client leaves (:mod:`thinkq.serve.disconnect`); a streamed request ends when
its stream is closed.

:class:`Books` keep what the gateway knows of finished requests: the sliding window
of records (the measured mean system time), the Prometheus metrics, the online
latency refit (served requests only) and the per-request log line (the prompt only
when asked; logged in batches, :attr:`Books.lines`, :mod:`thinkq.serve.logs`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from thinkq.errors import DisconnectedError, PromptTooLongError, ServerError
from thinkq.measure.generation import Generation, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.templates import Message
from thinkq.serve.collector import IdleCollector
from thinkq.serve.disconnect import Disconnected
from thinkq.serve.estimator import Clock
from thinkq.serve.logs import DeferredLog
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Queue, Record, Records
from thinkq.serve.refit import LatencyRefit

__all__ = ["Books", "Job", "Turn", "served", "too_long"]

T = TypeVar("T")

log = logging.getLogger("thinkq.serve")

#: The upstream statuses of a request that is too long, and the word its reason has.
_CLIENT_STATUSES = frozenset({400, 413, 422})
_CONTEXT = re.compile(r"context", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Job:
    """An admitted request.

    Parameters
    ----------
    task:
        Index of its type in the profile.
    arrival:
        When it was admitted (the gateway's clock, seconds).
    kind:
        ``"chat"`` (messages rendered with the chat template) or ``"completion"``
        (the prompt continued as it is).
    messages:
        The conversation (a completion's prompt is one user message).
    text:
        The last user message or the prompt (routing, and the log if asked).
    cue:
        The answer phase: no cue text, the request's ``max_tokens`` and ``stop``.
    sampling:
        Temperature and top-p.
    seed:
        The request's seed, if any.
    """

    task: int
    arrival: float
    kind: Literal["chat", "completion"]
    messages: list[Message]
    text: str
    cue: Cue
    sampling: Sampling = field(default_factory=Sampling)
    seed: int | None = None

    @property
    def prompt(self) -> list[Message] | str:
        """What goes to the generator: the messages of a chat, a completion's text."""
        return self.messages if self.kind == "chat" else self.text


@dataclass(slots=True)
class Turn:
    """A request in its slot: its budget (tokens), when service started (seconds), and
    the generation once the body of :func:`served` has it."""

    budget: int
    started: float
    generation: Generation | None = None
    #: The queue's :meth:`~thinkq.serve.queue.Queue.area` and ``work`` at the start.
    area: float = 0.0
    work: float = 0.0


class Books:
    """The books of finished requests (see the module docstring)."""

    def __init__(
        self,
        names: tuple[str, ...],
        *,
        records: Records,
        metrics: Metrics,
        refit: LatencyRefit | None,
        clock: Clock,
        log_prompts: bool,
    ) -> None:
        self.names = names
        self.records = records
        self.metrics = metrics
        self.refit = refit
        self.clock = clock
        self.log_prompts = log_prompts
        #: The requests in progress, which the log lines and the collector wait for.
        self.activity = IdleCollector()
        self.activity.settles += [records.settle, metrics.settle]  # off the requests' path
        self.lines = DeferredLog(log, idle=self.activity.idle)

    def finish(
        self, job: Job, turn: Turn | None, outcome: str, batch: float = 1.0, work: float = math.nan
    ) -> Record:
        """Record ``job`` (served as ``turn``, or never served) with ``outcome``, now.

        ``batch`` is the mean number in service while it was served, ``work`` its solo
        seconds by the server's law (:meth:`~thinkq.serve.queue.Queue.work`).
        """
        now = self.clock()
        started = now if turn is None else turn.started
        g = None if turn is None else turn.generation
        record = Record(
            arrival=job.arrival,
            wait=started - job.arrival,
            service=now - started,
            task=self.names[job.task],
            budget=0 if turn is None else turn.budget,
            thinking_tokens=g.thinking_tokens if g is not None else 0,
            outcome=outcome,
            batch=batch,
        )
        self.records.add(record)
        self.metrics.record(record)
        if self.refit is not None and outcome == "ok":
            self.refit.observe(job.task, record.thinking_tokens, record.service, batch, work)
        if log.isEnabledFor(logging.INFO):
            prompt = f" prompt={job.text[:200]!r}" if self.log_prompts else ""
            self.lines.info(
                "%s task=%s budget=%d thinking_tokens=%d wait=%.3fs service=%.3fs%s",
                outcome, record.task, record.budget, record.thinking_tokens,
                record.wait, record.service, prompt,
            )  # fmt: skip
        return record


async def _wait_turn(queue: Queue, disconnected: Disconnected) -> None:
    """Take a slot of ``queue`` in FIFO order, unless the client leaves first.

    Raises
    ------
    DisconnectedError
        The client left first; the request is no longer in the queue.
    """
    turn = queue.enter()  # synchronous: admission and entering are one step
    if turn is None:
        return  # a free slot: no waiting, nothing to watch
    watch: asyncio.Future[Any] = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({turn, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        watch.cancel()
        queue.leave(turn)
        raise
    if turn.done():
        watch.cancel()
        return
    queue.leave(turn)
    raise DisconnectedError("the client left while its request waited for a slot")


class _Served:
    """The async context of :func:`served` (a class: cheaper to enter and leave than a
    generator-based context, on every request's path)."""

    __slots__ = ("books", "budget", "disconnected", "job", "queue", "turn")

    def __init__(
        self,
        job: Job,
        queue: Queue,
        books: Books,
        budget: Callable[[int], int],
        disconnected: Disconnected,
    ) -> None:
        self.job, self.queue, self.books = job, queue, books
        self.budget, self.disconnected = budget, disconnected
        self.turn: Turn | None = None

    async def __aenter__(self) -> Turn:
        try:
            await _wait_turn(self.queue, self.disconnected)
        except DisconnectedError:
            self.books.finish(self.job, None, "disconnected")
            raise
        self.turn = Turn(self.budget(self.job.task), self.books.clock(), None, *self.queue.marks())
        return self.turn

    async def __aexit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        turn, queue = self.turn, self.queue
        assert turn is not None  # entered
        outcome = "disconnected"
        try:
            if exc is None:
                if turn.generation is not None:
                    outcome = "ok"
            elif isinstance(exc, ServerError):
                if not too_long(exc):
                    outcome = "upstream_error"
                else:
                    outcome = "bad_request"
                    why = f"prompt: does not fit the model's context ({exc})"
                    raise PromptTooLongError(why) from exc
        finally:
            seconds = self.books.clock() - turn.started
            area, work = queue.marks()  # work: solo seconds by the server's law (NaN: no law)
            batch = (area - turn.area) / seconds if seconds > 0 else float(queue.busy)
            queue.release()  # the one place a served request gives its slot back
            self.books.finish(self.job, turn, outcome, max(batch, 1.0), work - turn.work)


def served(
    job: Job,
    *,
    queue: Queue,
    books: Books,
    budget: Callable[[int], int],
    disconnected: Disconnected,
) -> AbstractAsyncContextManager[Turn]:
    """``async with served(...) as turn:`` hold ``job``'s slot for the body of the block.

    ``budget(task)`` is read when service starts (the plan in force then). The body
    sets ``turn.generation``; the outcome is ``ok`` where it did, ``upstream_error``
    where the body raised :class:`~thinkq.errors.ServerError`, ``bad_request`` where
    that error says the prompt is too long (:func:`too_long`), and ``disconnected``
    otherwise (the client left, the stream was closed early, the task was cancelled).

    Raises
    ------
    DisconnectedError
        The client left while waiting (recorded; no slot was taken).
    PromptTooLongError
        The upstream refused the prompt as longer than the model's context.
    """
    return _Served(job, queue, books, budget, disconnected)


def too_long(exc: ServerError) -> bool:
    """Whether the upstream refused a request as too long for the model's context.

    The servers say so with a 4xx and a message that names the context: "This
    model's maximum context length is 4096 tokens" (vLLM, llama-cpp-python), "the
    request exceeds the available context size" (llama.cpp), "longer than the
    model's context length" (SGLang).
    """
    return exc.status in _CLIENT_STATUSES and _CONTEXT.search(str(exc)) is not None
