"""The ``cap`` mode: the server's native thinking budget, an upper bound only.

One chat request carries the budget in the server's own field (vLLM
``thinking_token_budget``, llama.cpp ``thinking_budget_tokens``); the server splits
the thinking into ``reasoning_content``. Use :class:`~thinkq.measure.forcing.Forcer`
where the budget must be exact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from thinkq.errors import ForcingError
from thinkq.measure.generation import (
    Generation,
    Mode,
    Sampling,
    check_budget,
    first_choice,
    usage,
)
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message

__all__ = ["Capper"]


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
        check_budget(budget)
        body = {
            "model": self.server.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": budget + cue.max_tokens + 64,
            self.field: budget,
            **self.sampling.body(seed),
        }
        started = time.perf_counter()
        reply = await self.server.post("/chat/completions", body)
        latency = time.perf_counter() - started
        message = first_choice(reply, "/chat/completions").get("message")
        if not isinstance(message, dict):
            message = {}
        thinking = str(message.get("reasoning_content") or message.get("reasoning") or "")
        answer = str(message.get("content") or "")
        counts = reply.get("usage")
        details = counts.get("completion_tokens_details") if isinstance(counts, dict) else None
        counted = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if not isinstance(counted, int):
            counted = len(await self.server.tokenize(thinking)) if thinking else 0
        if counted > budget:
            raise ForcingError(
                f"cap: the server thought for {counted} tokens over a cap of {budget}; "
                f"does it support {self.field!r}?"
            )
        completion = usage(reply, "completion_tokens")
        return Generation(
            budget=budget,
            thinking=thinking,
            answer=answer,
            thinking_tokens=counted,
            answer_tokens=max((completion or counted) - counted, 0),
            prompt_tokens=usage(reply, "prompt_tokens"),
            latency_s=latency,
            mode="cap",
        )
