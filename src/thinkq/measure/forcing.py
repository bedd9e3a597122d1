"""Budget forcing: make a model think for exactly ``l`` tokens, then answer (section IV-A).

:class:`Forcer` works over ``/v1/completions`` of any OpenAI-compatible server, in
two phases (s1-style budget forcing):

1. the rendered prompt and the opening of thinking go out with ``max_tokens = l`` and
   the tokens that would end thinking early (end of sequence, end of turn,
   ``</think>``) suppressed through ``logit_bias``. Their ids come from the server's
   tokenizer, never from a table. The server must stop for length after exactly
   ``l`` tokens (``usage.completion_tokens == l``); any other reply raises
   :class:`~thinkq.errors.ForcingError`. ``l = 0`` sends no request at all (many
   servers read ``max_tokens = 0`` as "no limit").
2. the thinking, the end-of-thinking marker and an answer cue go out again; the model
   writes a short answer.

It returns a :class:`~thinkq.measure.generation.Generation` whose token counts are
the server's ``usage`` (the answer counted by the server's tokenizer where a reply
has none, streamed or not); :class:`~thinkq.measure.cap.Capper` is the ``cap`` mode.
Messages are rendered with the chat template; a prompt given as text (a
``/v1/completions`` request) is continued as it is.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
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
    first_choice,
    stream_choices,
    timings_of,
    usage,
)
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import END_TEXTS, FREE, Message, Template, Thinking

__all__ = ["Forcer"]


class Forcer:
    """Exact budget forcing over ``/v1/completions``.

    Parameters
    ----------
    server:
        The server and model.
    template:
        The client-side chat template, or ``None`` to have the server render it.
    thinking:
        How thinking is delimited; default: the template's (``free`` with the server's).
    sampling:
        Temperature and top-p of calls that give none.
    suppress_ids:
        Token ids to suppress while thinking, instead of asking the server's tokenizer.
    """

    mode: Mode = "force"

    def __init__(
        self,
        server: Server,
        *,
        template: Template | None,
        thinking: Thinking | None = None,
        sampling: Sampling | None = None,
        suppress_ids: Sequence[int] | None = None,
    ) -> None:
        self.server = server
        self.template = template
        self.thinking = thinking or (template.thinking if template else FREE)
        self.sampling = sampling or Sampling()
        self.suppress_ids: tuple[int, ...] | None = (
            tuple(suppress_ids) if suppress_ids is not None else None
        )

    async def prepare(self) -> None:
        """Find the ids of the tokens that would end thinking (once).

        The template's end-of-turn texts (every known one, :data:`END_TEXTS`, with the
        server's template or a template without its own, such as ``raw``) and the
        end of thinking are tokenized by the server; those that are one token are the
        model's special tokens and are suppressed.
        """
        if self.suppress_ids is not None:
            return
        ends = (self.template.end_texts if self.template else ()) or END_TEXTS
        texts = tuple(dict.fromkeys((*ends, *self.thinking.end_texts)))
        ids: dict[int, None] = {}
        for text in texts:
            tokens = await self.server.tokenize(text)
            if len(tokens) == 1:  # a special token of this model; else not its marker
                ids[tokens[0]] = None
        if not ids:
            raise ServerError(
                f"suppress_ids: none of the end-of-sequence texts ({', '.join(texts)}) "
                "is one token of this model; choose its --template or give --suppress-ids",
                field="suppress_ids",
            )
        self.suppress_ids = tuple(ids)

    async def render(self, messages: Sequence[Message] | str) -> str:
        """The raw prompt for ``messages`` (a text as it is), up to where thinking begins."""
        if isinstance(messages, str):
            text = messages
        elif self.template is None:
            text = await self.server.apply_template(messages)
        else:
            text = self.template.render(messages)
        return text + self.thinking.open

    def _think_body(self, prompt: str, budget: int, sampled: dict[str, Any]) -> dict[str, Any]:
        if self.suppress_ids is None:
            raise RuntimeError("Forcer.prepare() must run before generating")
        return {
            "model": self.server.model,
            "prompt": prompt,
            "max_tokens": budget,
            "logit_bias": {str(i): -100 for i in self.suppress_ids},
            **sampled,
        }

    def _answer_body(self, prompt: str, cue: Cue, sampled: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.server.model,
            "prompt": prompt,
            "max_tokens": cue.max_tokens,
        }
        if cue.stop:
            body["stop"] = list(cue.stop)
        return {**body, **sampled}

    @staticmethod
    def _checked(budget: int, produced: int | None, finish: object) -> int:
        if produced != budget or finish != "length":
            raise ForcingError(
                f"forcing: thinking stopped at {produced} of {budget} tokens "
                f"(finish_reason {finish!r}); the budget was not enforced"
            )
        return budget

    async def generate(
        self,
        messages: Sequence[Message] | str,
        budget: int,
        *,
        cue: Cue,
        seed: int | None = None,
        sampling: Sampling | None = None,
    ) -> Generation:
        """Think for exactly ``budget`` tokens, then answer after ``cue``.

        ``sampling`` (default: the forcer's) and ``seed`` go with both requests.

        Raises
        ------
        ForcingError
            The server did not stop the thinking for length after ``budget`` tokens.
        ValueError
            ``budget`` is negative.
        """
        check_budget(budget)
        sampled = (sampling or self.sampling).body(seed)
        prompt = await self.render(messages)
        started = time.perf_counter()
        thinking, prompt_tokens, timings = "", None, None
        if budget > 0:
            reply = await self.server.post(
                "/completions", self._think_body(prompt, budget, sampled)
            )
            timings = timings_of(reply, started, time.perf_counter())
            choice = first_choice(reply, "/completions")
            produced = usage(reply, "completion_tokens")
            self._checked(budget, produced, choice.get("finish_reason"))
            thinking = str(choice.get("text") or "")
            prompt_tokens = usage(reply, "prompt_tokens")
        head = prompt + thinking + self.thinking.close + cue.text
        reply = await self.server.post("/completions", self._answer_body(head, cue, sampled))
        text = str(first_choice(reply, "/completions").get("text") or "")
        latency = time.perf_counter() - started
        answered = await counted(self.server, text, usage(reply, "completion_tokens"))
        if prompt_tokens is None:
            prompt_tokens = usage(reply, "prompt_tokens")
        return Generation(
            budget=budget,
            thinking=thinking,
            answer=cue.text + text,
            thinking_tokens=budget,
            answer_tokens=answered,
            prompt_tokens=prompt_tokens,
            latency_s=latency,
            mode="force",
            timings=timings,
        )

    # long: the two phases of one streamed generation, in order, sharing the prompt,
    # the thinking and the counts; apart, each would need the other's state
    async def stream(
        self,
        messages: Sequence[Message] | str,
        budget: int,
        *,
        cue: Cue,
        seed: int | None = None,
        sampling: Sampling | None = None,
    ) -> AsyncGenerator[Piece]:
        """:meth:`generate`, streamed: thinking pieces, answer pieces, then ``done``.

        The thinking is exact when the server stops it for length: a finish reason
        of ``"length"`` with ``max_tokens = budget`` and the end tokens suppressed
        means ``budget`` tokens; ``usage`` is checked as well where the server sends it.
        Closing this generator closes the upstream reply at once.
        """
        check_budget(budget)
        sampled = (sampling or self.sampling).body(seed)
        prompt = await self.render(messages)
        started = time.perf_counter()
        thinking: list[str] = []
        prompt_tokens: int | None = None
        if budget > 0:
            finish: object = None
            produced: int | None = None
            body = {**self._think_body(prompt, budget, sampled), **INCLUDE_USAGE}
            async with aclosing(self.server.stream("/completions", body)) as events:
                async for event in events:
                    produced = usage(event, "completion_tokens") or produced
                    prompt_tokens = usage(event, "prompt_tokens") or prompt_tokens
                    for choice in stream_choices(event):
                        text = str(choice.get("text") or "")
                        finish = choice.get("finish_reason") or finish
                        if text:
                            thinking.append(text)
                            yield Piece("thinking", text)
            self._checked(budget, budget if produced is None else produced, finish)
        head = prompt + "".join(thinking) + self.thinking.close + cue.text
        if cue.text:
            yield Piece("answer", cue.text)
        answer: list[str] = []
        answered: int | None = None
        body = {**self._answer_body(head, cue, sampled), **INCLUDE_USAGE}
        async with aclosing(self.server.stream("/completions", body)) as events:
            async for event in events:
                answered = usage(event, "completion_tokens") or answered
                if budget == 0:
                    prompt_tokens = usage(event, "prompt_tokens") or prompt_tokens
                for choice in stream_choices(event):
                    text = str(choice.get("text") or "")
                    if text:
                        answer.append(text)
                        yield Piece("answer", text)
        text = "".join(answer)
        generation = Generation(
            budget=budget,
            thinking="".join(thinking),
            answer=cue.text + text,
            thinking_tokens=budget,
            answer_tokens=await counted(self.server, text, answered),
            prompt_tokens=prompt_tokens,
            latency_s=time.perf_counter() - started,
            mode="force",
        )
        yield Piece("done", generation=generation)
