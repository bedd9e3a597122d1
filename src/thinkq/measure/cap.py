"""The ``cap`` mode: the server's native thinking budget, an upper bound only.

One streamed chat request carries the budget in the server's own field (vLLM
``thinking_token_budget``, llama.cpp ``thinking_budget_tokens``); the server splits
the thinking into ``reasoning_content`` (``reasoning`` on some servers).
:meth:`Capper.stream` gives the pieces as they arrive, :meth:`Capper.generate` the
whole generation (the same stream, drained). Use
:class:`~thinkq.measure.forcing.Forcer` where the budget must be exact.

The answer honours the cue's ``max_tokens`` and ``stop`` as in force mode. The server
cannot be asked for them: its ``max_tokens`` counts the thinking too, and it applies
``stop`` strings to the thinking as well, where they would end it early. So the
request asks for ``budget + max_tokens`` tokens and no stop strings, and the answer
is cut here: before the first stop string, or after ``max_tokens`` answer tokens
(servers stream one token per event); cutting closes the stream, which ends the
generation upstream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from thinkq.errors import ForcingError, ServerError
from thinkq.measure.generation import (
    INCLUDE_USAGE,
    Generation,
    Mode,
    Piece,
    Sampling,
    check_budget,
    counted,
    stream_choices,
    usage,
)
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message

__all__ = ["Capper"]

_URL = "/chat/completions"


def _texts(part: object) -> tuple[str, str]:
    """The thinking and answer texts of a streamed ``delta``."""
    if not isinstance(part, dict):
        return "", ""
    thinking = part.get("reasoning_content") or part.get("reasoning") or ""
    return str(thinking), str(part.get("content") or "")


class _Answer:
    """The answer as it streams in, cut at the first stop string or after ``max_tokens``.

    Text that may be the start of a stop string is held back until the next event
    tells; :attr:`tokens` counts the answer's events and :attr:`thinking` the
    thinking's (one token each), the counts of a stream closed before its ``usage``.
    """

    def __init__(self, cue: Cue) -> None:
        self.stops = tuple(s for s in cue.stop if s)
        self.limit = cue.max_tokens
        self.kept: list[str] = []
        self.pending = ""
        self.tokens = 0
        self.thinking = 0
        self.cut = False

    def add(self, text: str) -> str:
        """What of the next event's ``text`` goes to the client now."""
        self.tokens += 1
        pending = self.pending + text
        found = [i for i in (pending.find(s) for s in self.stops) if i >= 0]
        if found:
            self.cut, out, self.pending = True, pending[: min(found)], ""
        elif self.tokens >= self.limit:
            self.cut, out, self.pending = True, pending, ""
        else:
            held = max((_overlap(pending, s) for s in self.stops), default=0)
            out, self.pending = pending[: len(pending) - held], pending[len(pending) - held :]
        self.kept.append(out)
        return out

    def flush(self) -> str:
        """The text held back when the stream ended without a stop string."""
        out, self.pending = self.pending, ""
        self.kept.append(out)
        return out


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that begins ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


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
    sampling:
        Temperature and top-p of calls that give none.
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
        self,
        messages: Sequence[Message] | str,
        budget: int,
        cue: Cue,
        sampled: dict[str, Any],
    ) -> dict[str, Any]:
        check_budget(budget)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return {
            "model": self.server.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": budget + cue.max_tokens,
            self.field: budget,
            **sampled,
            **INCLUDE_USAGE,
        }

    async def _generation(
        self, budget: int, thinking: str, answer: _Answer, counts: dict[str, Any], latency: float
    ) -> Generation:
        """The checked :class:`Generation`; ``counts`` holds the reply's ``usage``."""
        found = counts.get("usage")
        details = found.get("completion_tokens_details") if isinstance(found, dict) else None
        reported = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if answer.cut:  # the stream was closed here, before its usage: count its events
            reported = answer.thinking
        thought = await counted(
            self.server, thinking, reported if isinstance(reported, int) else None
        )
        if thought > budget:
            raise ForcingError(
                f"cap: the server thought for {thought} tokens over a cap of {budget}; "
                f"does it support {self.field!r}?"
            )
        completion = usage(counts, "completion_tokens")
        if answer.cut:
            answered = answer.tokens
        elif completion is not None:
            answered = max(completion - thought, 0)
        else:
            answered = await counted(self.server, "".join(answer.kept), None)
        return Generation(
            budget=budget,
            thinking=thinking,
            answer="".join(answer.kept),
            thinking_tokens=thought,
            answer_tokens=answered,
            prompt_tokens=usage(counts, "prompt_tokens"),
            latency_s=latency,
            mode="cap",
        )

    async def generate(
        self,
        messages: Sequence[Message] | str,
        budget: int,
        *,
        cue: Cue,
        seed: int | None = None,
        sampling: Sampling | None = None,
    ) -> Generation:
        """One chat request with the thinking capped at ``budget`` tokens: :meth:`stream`,
        drained (the same request, the same counts).

        Raises
        ------
        ForcingError
            The thinking is longer than ``budget``: the server ignored the cap.
        ServerError
            The request failed, or the stream ended without a choice.
        ValueError
            ``budget`` is negative.
        """
        pieces = self.stream(messages, budget, cue=cue, seed=seed, sampling=sampling)
        async for piece in pieces:
            if piece.generation is not None:
                return piece.generation
        raise AssertionError("unreachable: a stream ends with its generation")  # pragma: no cover

    async def stream(
        self,
        messages: Sequence[Message] | str,
        budget: int,
        *,
        cue: Cue,
        seed: int | None = None,
        sampling: Sampling | None = None,
    ) -> AsyncGenerator[Piece]:
        """Thinking pieces, answer pieces (cut as the module docstring says), then ``done``.

        A text is sent as one user message. Each delta's
        ``reasoning_content`` (or ``reasoning``) is a thinking piece and its
        ``content`` an answer piece. Where the answer was cut, the stream closes before
        its ``usage`` and the tokens are the events counted. Otherwise the thinking
        tokens are the server's ``usage.completion_tokens_details.reasoning_tokens``
        (the last event's, asked for with ``include_usage``), else the thinking
        counted by its tokenizer; the answer tokens are ``completion_tokens`` less the
        thinking, else the answer counted by the tokenizer.

        Raises
        ------
        ForcingError, ServerError, ValueError
            As :meth:`generate` (a thinking over ``budget`` after its pieces).
        """
        body = self._body(messages, budget, cue, (sampling or self.sampling).body(seed))
        started = time.perf_counter()
        thinking: list[str] = []
        answer = _Answer(cue)
        counts: dict[str, Any] = {}
        chosen = False
        events = self.server.stream(_URL, body)
        try:
            async for event in events:
                if isinstance(event.get("usage"), dict):
                    counts = event
                for choice in stream_choices(event):
                    chosen = True
                    think, text = _texts(choice.get("delta"))
                    if think:
                        answer.thinking += 1
                        thinking.append(think)
                        yield Piece("thinking", think)
                    if text and (kept := answer.add(text)):
                        yield Piece("answer", kept)
                    if answer.cut:
                        break
                if answer.cut:
                    break
        finally:
            await events.aclose()  # closes the upstream reply, however this ends
        if tail := answer.flush():
            yield Piece("answer", tail)
        latency = time.perf_counter() - started
        if not chosen:
            raise ServerError(f"server: the stream of {_URL} has no choices")
        generation = await self._generation(budget, "".join(thinking), answer, counts, latency)
        yield Piece("done", generation=generation)
