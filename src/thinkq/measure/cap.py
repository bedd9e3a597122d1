"""The ``cap`` mode: the server's native thinking budget, an upper bound only.

One chat request carries the budget in the server's own field (vLLM
``thinking_token_budget``, llama.cpp ``thinking_budget_tokens``); the server splits
the thinking into ``reasoning_content`` (``reasoning`` on some servers), whole
(:meth:`Capper.generate`) or delta by delta (:meth:`Capper.stream`). Use
:class:`~thinkq.measure.forcing.Forcer` where the budget must be exact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from thinkq.errors import ForcingError, ServerError
from thinkq.measure.generation import (
    INCLUDE_USAGE,
    Generation,
    Mode,
    Piece,
    Sampling,
    check_budget,
    first_choice,
    stream_choices,
    usage,
)
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message

__all__ = ["Capper"]

_URL = "/chat/completions"


def _texts(part: object) -> tuple[str, str]:
    """The thinking and answer texts of a reply's ``message`` or a streamed ``delta``."""
    if not isinstance(part, dict):
        return "", ""
    thinking = part.get("reasoning_content") or part.get("reasoning") or ""
    return str(thinking), str(part.get("content") or "")


class Capper:
    """The ``cap`` mode: the server's native thinking budget, an upper bound only.

    Parameters
    ----------
    server:
        The server and model; the server renders its chat template and splits the
        thinking into ``reasoning_content``.
    field:
        The request field carrying the budget: ``"thinking_token_budget"`` (vLLM) or
        ``"thinking_budget_tokens"`` (llama.cpp).
    """

    mode: Mode = "cap"

    def __init__(
        self,
        server: Server,
        *,
        field: str = "thinking_token_budget",
        sampling: Sampling | None = None,
    ) -> None:
        self.server = server
        self.field = field
        self.sampling = sampling or Sampling()

    async def prepare(self) -> None:
        return None

    def _body(
        self, messages: Sequence[Message], budget: int, cue: Cue, seed: int | None
    ) -> dict[str, Any]:
        check_budget(budget)
        return {
            "model": self.server.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": budget + cue.max_tokens + 64,
            self.field: budget,
            **self.sampling.body(seed),
        }

    async def _generation(
        self, budget: int, thinking: str, answer: str, counts: dict[str, Any], latency: float
    ) -> Generation:
        """The checked :class:`Generation` (see :meth:`generate`); ``counts`` holds
        the reply's ``usage``."""
        found = counts.get("usage")
        details = found.get("completion_tokens_details") if isinstance(found, dict) else None
        counted = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if not isinstance(counted, int):
            counted = len(await self.server.tokenize(thinking)) if thinking else 0
        if counted > budget:
            raise ForcingError(
                f"cap: the server thought for {counted} tokens over a cap of {budget}; "
                f"does it support {self.field!r}?"
            )
        completion = usage(counts, "completion_tokens")
        return Generation(
            budget=budget,
            thinking=thinking,
            answer=answer,
            thinking_tokens=counted,
            answer_tokens=max((completion or counted) - counted, 0),
            prompt_tokens=usage(counts, "prompt_tokens"),
            latency_s=latency,
            mode="cap",
        )

    async def generate(
        self, messages: Sequence[Message], budget: int, *, cue: Cue, seed: int | None = None
    ) -> Generation:
        """One chat request with the thinking capped at ``budget`` tokens.

        The thinking tokens are the server's
        ``usage.completion_tokens_details.reasoning_tokens`` where it reports them,
        else the thinking text counted by its tokenizer.

        Raises
        ------
        ForcingError
            The thinking is longer than ``budget``: the server ignored the cap.
        ValueError
            ``budget`` is negative.
        """
        body = self._body(messages, budget, cue, seed)
        started = time.perf_counter()
        reply = await self.server.post(_URL, body)
        latency = time.perf_counter() - started
        thinking, answer = _texts(first_choice(reply, _URL).get("message"))
        return await self._generation(budget, thinking, answer, reply, latency)

    async def stream(
        self, messages: Sequence[Message], budget: int, *, cue: Cue, seed: int | None = None
    ) -> AsyncIterator[Piece]:
        """:meth:`generate`, streamed: thinking pieces, answer pieces, then ``done``.

        Each delta's ``reasoning_content`` (or ``reasoning``) is a thinking piece and
        its ``content`` an answer piece, as they arrive; the thinking tokens come from
        the last event's ``usage`` (asked for with ``include_usage``), else from the
        tokenizer, once the stream has ended.

        Raises
        ------
        ForcingError
            The thinking is longer than ``budget`` (after its pieces).
        ServerError
            The request failed, or the stream ended without a choice.
        ValueError
            ``budget`` is negative.
        """
        body = {**self._body(messages, budget, cue, seed), **INCLUDE_USAGE}
        started = time.perf_counter()
        thinking: list[str] = []
        answer: list[str] = []
        counts: dict[str, Any] = {}
        chosen = False
        async for event in self.server.stream(_URL, body):
            if isinstance(event.get("usage"), dict):
                counts = event
            for choice in stream_choices(event):
                chosen = True
                think, text = _texts(choice.get("delta"))
                if think:
                    thinking.append(think)
                    yield Piece("thinking", think)
                if text:
                    answer.append(text)
                    yield Piece("answer", text)
        latency = time.perf_counter() - started
        if not chosen:
            raise ServerError(f"server: the stream of {_URL} has no choices")
        generation = await self._generation(
            budget, "".join(thinking), "".join(answer), counts, latency
        )
        yield Piece("done", generation=generation)
