"""One request's run: what it asks for, waiting for its turn, and its pieces.

:func:`wait_turn` races the queue against the client's disconnection, so a client
that leaves while waiting leaves the queue; :func:`pieces` gives the same stream of
:class:`~thinkq.measure.generation.Piece` for both modes (each streams its upstream
reply: ``force`` over ``/v1/completions``, ``cap`` over ``/v1/chat/completions``);
:class:`Stream` owns a streamed request's slot until the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from thinkq.errors import ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generation, Piece, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.templates import Message
from thinkq.serve.queue import Queue

__all__ = ["DisconnectedError", "Job", "OverloadedError", "Stream", "pieces", "wait_turn"]


class OverloadedError(Exception):
    """A request refused to protect the server (HTTP 503 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DisconnectedError(Exception):
    """The client disconnected while its request waited for a slot."""


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


async def wait_turn(queue: Queue, disconnected: Callable[[], Awaitable[object]]) -> None:
    """Take a slot of ``queue`` in FIFO order, unless the client leaves first.

    ``disconnected()`` returns when the client has gone.

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
    raise DisconnectedError


async def pieces(generator: Forcer | Capper, job: Job, budget: int) -> AsyncGenerator[Piece]:
    """The run of ``job`` at ``budget`` as thinking pieces, answer pieces, then ``done``.

    Both modes stream the upstream reply as it arrives (:meth:`Forcer.stream
    <thinkq.measure.forcing.Forcer.stream>`, :meth:`Capper.stream
    <thinkq.measure.cap.Capper.stream>`); closing this generator closes that reply.
    """
    stream = generator.stream(job.messages, budget, cue=job.cue, seed=job.seed)
    try:
        async for piece in stream:
            yield piece
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()


class Stream:
    """The pieces of a streamed job, which hold its slot until :meth:`aclose`.

    Iterating to the end, an upstream failure, or :meth:`aclose` (however early: the
    client left) closes the upstream reply and calls ``on_close(generation,
    outcome)`` exactly once, which frees the slot and records the outcome.
    """

    def __init__(
        self,
        first: Piece,
        source: AsyncGenerator[Piece],
        *,
        on_close: Callable[[Generation | None, str], None],
    ) -> None:
        self._next: Piece | None = first
        self._source = source
        self._on_close = on_close
        self._generation: Generation | None = None
        self._closed = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Piece:
        piece, self._next = self._next, None
        try:
            if piece is None:
                piece = await anext(self._source)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except ServerError:
            await self.aclose("upstream_error")
            raise
        if piece.kind == "done":
            self._generation = piece.generation
        return piece

    async def aclose(self, outcome: str | None = None) -> None:
        """End the stream: free the slot, record the outcome, close the upstream reply."""
        if self._closed:
            return
        self._closed = True
        if outcome is None:
            outcome = "ok" if self._generation is not None else "disconnected"
        self._on_close(self._generation, outcome)
        await self._source.aclose()
