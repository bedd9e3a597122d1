"""A streamed answer: the upstream's pieces as OpenAI server-sent events."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from thinkq.errors import GatewayError, ServerError
from thinkq.measure.generation import Piece
from thinkq.serve.collector import IdleCollector
from thinkq.serve.openai import Reply, error_body, sse

__all__ = ["EventStream"]


class EventStream(StreamingResponse):
    """A server-sent event stream whose source is closed however the response ends.

    Starlette stops iterating when the client leaves but does not close the
    iterator; closing the source here ends the request (its slot is given back) at
    once, not at garbage collection. While it streams, the request counts as in
    progress in ``activity`` (the endpoint that made it has returned by then).
    """

    def __init__(
        self,
        reply: Reply,
        first: Piece,
        source: AsyncGenerator[Piece],
        *,
        usage: bool,
        activity: IdleCollector | None = None,
    ) -> None:
        self.events = _events(reply, first, source, usage=usage)
        self.source, self.activity = source, activity
        super().__init__(self.events, media_type="text/event-stream")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.activity is not None:
            self.activity.enter()
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.activity is not None:
                self.activity.leave()
            await self.events.aclose()
            await self.source.aclose()


async def _events(
    reply: Reply, first: Piece, source: AsyncGenerator[Piece], *, usage: bool
) -> AsyncGenerator[bytes]:
    def encoded(piece: Piece) -> list[bytes]:
        if piece.generation is not None:
            return [sse(c) for c in reply.last_chunks(piece.generation, usage=usage)]
        if piece.kind == "done":
            return []
        return [sse(reply.chunk(piece.kind, piece.text))]

    if reply.kind == "chat":
        yield sse(reply.first_chunk())
    try:
        for event in encoded(first):
            yield event
        async for piece in source:
            for event in encoded(piece):
                yield event
    except ServerError as exc:
        yield sse(error_body(f"upstream: {exc}", "upstream_error"))
    except GatewayError as exc:  # the answer phase did not fit the context
        yield sse(error_body(str(exc), exc.kind))
    yield sse("[DONE]")
