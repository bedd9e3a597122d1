"""What a budgeted generation returns, and the helpers both modes share.

:class:`Generation` is one answered query (texts, the server's token counts, the
end-to-end latency); :class:`Piece` one part of a streamed one; :class:`Generator`
is what the runner and the gateway ask of :class:`~thinkq.measure.forcing.Forcer`
(exact budgets) and :class:`~thinkq.measure.cap.Capper` (the server's own cap).

Sampling is an argument of each call, not of the generator, so one generator serves
requests with different temperatures. Token counts are the server's ``usage`` where
it reports them and the server's tokenizer's count of the text otherwise
(:func:`counted`), the same rule whether the reply was streamed or not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from thinkq.errors import ServerError
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import Message

__all__ = [
    "INCLUDE_USAGE",
    "Generation",
    "Generator",
    "Mode",
    "Piece",
    "Sampling",
    "Timings",
    "check_budget",
    "counted",
    "first_choice",
    "stream_choices",
    "timings_of",
    "usage",
]

Mode = Literal["force", "cap"]

#: Asks a streaming server for a last event carrying the request's ``usage``.
INCLUDE_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters sent with every request (``seed`` is per request)."""

    temperature: float = 0.6
    top_p: float = 0.95

    def body(self, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p}
        if seed is not None:
            body["seed"] = seed
        return body


@dataclass(frozen=True, slots=True)
class Timings:
    """How the thinking phase of a forced generation went, for the server phase.

    ``start`` and ``end`` are :func:`time.perf_counter` stamps around the thinking
    request (seconds); the rest is the server's own ``timings`` of it where it reports
    them (llama.cpp: milliseconds decoding ``predicted_n`` tokens, and processing
    ``prompt_n`` prompt tokens), ``None`` otherwise.
    """

    start: float
    end: float
    predicted_ms: float | None = None
    predicted_n: int | None = None
    predicted_per_token_ms: float | None = None
    prompt_ms: float | None = None
    prompt_n: int | None = None


def timings_of(reply: dict[str, Any], start: float, end: float) -> Timings:
    """The :class:`Timings` of a thinking request that ran from ``start`` to ``end``."""
    raw = reply.get("timings")
    given = raw if isinstance(raw, dict) else {}

    def number(key: str) -> float | None:
        value = given.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        return float(value) if math.isfinite(value) and value >= 0 else None

    def count(key: str) -> int | None:
        value = given.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Timings(
        start=start,
        end=end,
        predicted_ms=number("predicted_ms"),
        predicted_n=count("predicted_n"),
        predicted_per_token_ms=number("predicted_per_token_ms"),
        prompt_ms=number("prompt_ms"),
        prompt_n=count("prompt_n"),
    )


@dataclass(frozen=True, slots=True)
class Generation:
    """One answered query.

    ``answer`` is the cue followed by the model's continuation: what a grader reads.
    ``latency_s`` is the end-to-end time of the generation requests (seconds): both
    phases in forcing mode, the one chat request in cap mode. Rendering the prompt
    with the server's chat template is not part of it. ``timings`` describe the
    thinking request of a forced generation with a budget (``None`` otherwise).
    """

    budget: int
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    prompt_tokens: int | None
    latency_s: float
    mode: Mode
    timings: Timings | None = None


@dataclass(frozen=True, slots=True)
class Piece:
    """A streamed piece: thinking or answer text, or the finished :class:`Generation`."""

    kind: Literal["thinking", "answer", "done"]
    text: str = ""
    generation: Generation | None = None


class Generator(Protocol):
    """What the runner and the gateway need: a budgeted generation for some messages."""

    mode: Mode

    async def prepare(self) -> None: ...

    async def generate(
        self,
        messages: Sequence[Message] | str,
        budget: int,
        *,
        cue: Cue,
        seed: int | None = None,
        sampling: Sampling | None = None,
    ) -> Generation: ...


def usage(reply: dict[str, Any], key: str) -> int | None:
    """``reply["usage"][key]`` where it is an integer, else ``None``."""
    usage = reply.get("usage")
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


async def counted(server: Server, text: str, reported: int | None) -> int:
    """``reported`` (the server's ``usage``) where given, else ``text``'s tokens.

    The tokens are counted by the server's tokenizer (no request for an empty text).
    """
    if reported is not None:
        return reported
    return len(await server.tokenize(text)) if text else 0


def first_choice(reply: dict[str, Any], url: str) -> dict[str, Any]:
    """The first choice of a reply; a reply without one is a :class:`ServerError`."""
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ServerError(f"server: the reply of {url} has no choices")
    return choices[0]


def stream_choices(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices of a streamed event (none in the last one, which carries ``usage``)."""
    choices = event.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def check_budget(budget: int) -> None:
    """Raise ``ValueError`` for a negative budget (tokens)."""
    if budget < 0:
        raise ValueError(f"budget: must be >= 0 tokens, not {budget}")
