"""Ending a request's service when its client leaves.

:func:`until_disconnected` runs a plain request's upstream call in the request's own
task and cancels it when ``disconnected()`` returns (the client has gone); the
cancellation becomes :class:`~thinkq.errors.DisconnectedError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from thinkq.errors import DisconnectedError

__all__ = ["Disconnected", "until_disconnected"]

T = TypeVar("T")

#: ``disconnected()`` returns when the request's client has gone.
Disconnected = Callable[[], Awaitable[object]]


async def until_disconnected(work: Awaitable[T], disconnected: Disconnected) -> T:
    """The result of ``work``, unless the client leaves first (then ``work`` is cancelled).

    ``work`` runs in the calling task (no task of its own: this is on every plain
    request's path); the client's departure cancels that task, and the cancellation
    becomes :class:`~thinkq.errors.DisconnectedError`.

    Raises
    ------
    DisconnectedError
        The client left before ``work`` was done.
    """
    task = asyncio.current_task()
    assert task is not None  # always called from a task
    watch: asyncio.Future[Any] = asyncio.ensure_future(disconnected(), loop=task.get_loop())
    cancel = partial(_cancel_unless_cancelled, task)
    watch.add_done_callback(cancel)
    try:
        return await work
    except asyncio.CancelledError:
        left = watch.done() and not watch.cancelled()
        if left and task.uncancel() == 0:  # cancelled by the client's leaving alone
            raise DisconnectedError("the client left before its reply was ready") from None
        raise
    finally:
        watch.remove_done_callback(cancel)
        watch.cancel()


def _cancel_unless_cancelled(task: asyncio.Task[Any], watch: asyncio.Future[Any]) -> None:
    if not watch.cancelled():
        task.cancel()
