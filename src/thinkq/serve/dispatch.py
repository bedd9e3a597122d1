"""A request's generation on the replicas: the least-loaded one, another if it is gone.

:func:`generate` and :func:`stream` send a request to
:meth:`Replicas.pick <thinkq.serve.replicas.Replicas.pick>` (the replica in rotation
with the fewest requests in flight) and count it there while it is in flight. Where
the upstream call fails because the replica refused or broke the connection
(:func:`~thinkq.serve.replicas.connection_failed`) and nothing of the reply has
reached the client yet (a plain reply, a stream before its first piece), the replica
is taken out of rotation and the request is served again from the start on another
(:meth:`Replicas.failed <thinkq.serve.replicas.Replicas.failed>`), at most once per
replica. With one upstream a failure is the request's, as it always was.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from thinkq.errors import ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generation, Piece
from thinkq.serve.replicas import Replica, Replicas
from thinkq.serve.request import Job

__all__ = ["generate", "stream"]


def _generator(replica: Replica, mode: str) -> Forcer | Capper:
    return replica.capper if mode == "cap" else replica.forcer


async def generate(replicas: Replicas, job: Job, budget: int, mode: str) -> Generation:
    """``job``'s whole generation at ``budget`` (tokens) in ``mode``.

    Raises
    ------
    ServerError
        The upstream failed (on the last replica tried).
    """
    for _ in range(len(replicas)):
        replica = replicas.pick()
        replica.in_flight += 1
        try:
            generation = await _generator(replica, mode).generate(
                job.prompt, budget, cue=job.cue, seed=job.seed, sampling=job.sampling
            )
        except ServerError as exc:
            if replicas.failed(replica, exc):
                continue
            raise
        finally:
            replica.in_flight -= 1
        replica.served += 1
        return generation
    raise ServerError("server: every replica failed the request", transient=True)


async def stream(replicas: Replicas, job: Job, budget: int, mode: str) -> AsyncGenerator[Piece]:
    """``job``'s pieces at ``budget`` (tokens) in ``mode``.

    Raises
    ------
    ServerError
        The upstream failed (after the first piece, or on the last replica tried).
    """
    for _ in range(len(replicas)):
        replica = replicas.pick()
        replica.in_flight += 1
        sent = False
        try:
            pieces = _generator(replica, mode).stream(
                job.prompt, budget, cue=job.cue, seed=job.seed, sampling=job.sampling
            )
            async with aclosing(pieces):
                async for piece in pieces:
                    sent = True
                    yield piece
        except ServerError as exc:
            if replicas.failed(replica, exc) and not sent:
                continue
            raise
        finally:
            replica.in_flight -= 1
        replica.served += 1
        return
    raise ServerError("server: every replica failed the request", transient=True)
