"""The OpenAI wire format: requests in, responses and stream chunks out.

Requests are checked with pydantic; any problem is a one-line
:class:`~thinkq.errors.BadRequestError`
(HTTP 400) that names the field. Fields the gateway does not use (``logprobs``,
``user``, ...) are accepted and ignored; ``n`` other than 1 is refused. So are bodies
that JSON allows but nothing downstream can carry: nesting deeper than Python's
recursion limit, and strings with a lone UTF-16 surrogate (``"\\ud800"``: not
Unicode, so no UTF-8 encoder takes it), which are looked for only in bodies that
hold such an escape. A body is read by pydantic's own JSON parser first (one pass);
only one that it refuses or that holds such an escape is read step by step, for the
message that names the problem (the two ways take the same bodies alike:
``tests/test_serve_wire.py``).

Responses carry the answer as ``content`` (``text`` for completions), the thinking as
``reasoning_content`` (vLLM's convention) and the thinking tokens in
``usage.completion_tokens_details.reasoning_tokens`` (OpenAI's field). Streams send
thinking deltas as ``reasoning_content`` and answer deltas as ``content``.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thinkq.errors import BadRequestError
from thinkq.measure.generation import Generation
from thinkq.measure.templates import Message

__all__ = [
    "DEFAULT_ANSWER_TOKENS",
    "ChatRequest",
    "CompletionRequest",
    "Reply",
    "error_body",
    "parse",
    "sse",
]

#: Answer tokens allowed when a request gives no ``max_tokens``.
DEFAULT_ANSWER_TOKENS = 512

Kind = Literal["chat", "completion"]
_R = TypeVar("_R", bound="_Request")

#: A JSON escape of a UTF-16 surrogate (U+D800-U+DFFF): the only way a lone one gets in.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(_SURROGATE_ESCAPE.pattern.encode())
#: Response ids: 32 hex digits, a random 64-bit half per process and a count (unique
#: across gateways without a system call per request, as ``secrets.token_hex`` made).
_IDS = itertools.count(secrets.randbits(64) << 64)
#: Seeds beyond a signed 64-bit integer are refused (vLLM's range; larger break servers).
_SEED_BOUND = 1 << 63


class _Part(BaseModel):
    type: str = "text"
    text: str = ""


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[_Part] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class _StreamOptions(BaseModel):
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=-_SEED_BOUND, lt=_SEED_BOUND)
    n: Literal[1] = 1
    metadata: dict[str, Any] | None = None

    @property
    def answer_tokens(self) -> int:
        return self.max_tokens or DEFAULT_ANSWER_TOKENS

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def usage_in_stream(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(_Request):
    """``POST /v1/chat/completions``."""

    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @property
    def answer_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_ANSWER_TOKENS

    def chat(self) -> list[Message]:
        """The messages as role and text (the text parts of a content list, joined)."""
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Request):
    """``POST /v1/completions``: one prompt (a list of one prompt is accepted)."""

    prompt: str | list[str]

    def text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise BadRequestError("prompt: the gateway takes one prompt per request")
        return self.prompt[0]


def parse(kind: Kind, body: bytes) -> ChatRequest | CompletionRequest:
    """The request in ``body``, checked.

    Raises
    ------
    BadRequestError
        ``body`` is not UTF-8 JSON, or a field is missing or invalid (the message
        names it).
    """
    model = ChatRequest if kind == "chat" else CompletionRequest
    if _SURROGATE_ESCAPE_BYTES.search(body) is None:
        # pydantic's own JSON parser, one pass in Rust: it takes no body that the checked
        # way refuses, and reads alike those it takes (tests/test_serve_wire.py)
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass  # read again the checked way, for this module's messages
    return _checked(ChatRequest, body) if kind == "chat" else _checked(CompletionRequest, body)


def _checked(model: type[_R], body: bytes) -> _R:
    """:func:`parse` step by step: UTF-8, JSON, Unicode, then the fields."""
    try:
        text = body.decode()  # strictly: json.loads(bytes) lets UTF-8 surrogates through
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"body: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequestError("body: nested too deeply") from None
    except ValueError as exc:
        raise BadRequestError(f"body: not JSON ({exc})") from exc
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_unicode(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise BadRequestError(f"{where}: {error['msg']}") from None


def _check_unicode(data: object) -> None:
    """Raise :class:`BadRequestError` if a string of ``data`` holds a lone surrogate."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except RecursionError:  # deeper in this call stack than in json.loads's
        raise BadRequestError("body: nested too deeply") from None
    except UnicodeEncodeError:
        raise BadRequestError(
            "body: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), not Unicode text"
        ) from None


class Reply:
    """Responses and stream chunks for one request.

    Parameters
    ----------
    kind:
        ``"chat"`` or ``"completion"``.
    model:
        The model name reported back (the upstream's).
    answer_tokens:
        The request's answer limit, to tell ``"length"`` from ``"stop"``.
    """

    def __init__(self, kind: Kind, *, model: str, answer_tokens: int) -> None:
        self.kind = kind
        self.model = model
        self.answer_tokens = answer_tokens
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{next(_IDS):032x}"
        self.created = int(time.time())
        self.object = "chat.completion" if kind == "chat" else "text_completion"

    def _head(self, object_: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_, "created": self.created, "model": self.model}

    def finish_reason(self, generation: Generation) -> str:
        return "length" if generation.answer_tokens >= self.answer_tokens else "stop"

    @staticmethod
    def usage(generation: Generation) -> dict[str, Any]:
        prompt = generation.prompt_tokens or 0
        completion = generation.thinking_tokens + generation.answer_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": generation.thinking_tokens},
        }

    def response(self, generation: Generation) -> dict[str, Any]:
        """The whole (non-streamed) response."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": self.finish_reason(generation)}
        if self.kind == "chat":
            choice["message"] = {
                "role": "assistant",
                "content": generation.answer,
                "reasoning_content": generation.thinking,
            }
        else:
            choice |= {"text": generation.answer, "reasoning_content": generation.thinking}
            choice["logprobs"] = None
        return {**self._head(self.object), "choices": [choice], "usage": self.usage(generation)}

    def chunk(self, kind: Literal["thinking", "answer"], text: str) -> dict[str, Any]:
        """A stream chunk with a piece of thinking or of the answer."""
        key = "reasoning_content" if kind == "thinking" else "content"
        if self.kind == "chat":
            choice: dict[str, Any] = {"index": 0, "delta": {key: text}, "finish_reason": None}
        elif kind == "thinking":
            choice = {"index": 0, "text": "", "reasoning_content": text, "finish_reason": None}
        else:
            choice = {"index": 0, "text": text, "finish_reason": None}
        return {**self._head(self._chunk_object), "choices": [choice]}

    @property
    def _chunk_object(self) -> str:
        return "chat.completion.chunk" if self.kind == "chat" else "text_completion"

    def first_chunk(self) -> dict[str, Any]:
        """The opening chunk of a chat stream (the assistant's role)."""
        delta = {"role": "assistant", "content": ""}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return {**self._head(self._chunk_object), "choices": [choice]}

    def last_chunks(self, generation: Generation, *, usage: bool) -> list[dict[str, Any]]:
        """The closing chunk (finish reason), then the usage chunk if asked for."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": self.finish_reason(generation)}
        if self.kind == "chat":
            choice["delta"] = {}
        else:
            choice["text"] = ""
        chunks = [{**self._head(self._chunk_object), "choices": [choice]}]
        if usage:
            chunks.append(
                {**self._head(self._chunk_object), "choices": [], "usage": self.usage(generation)}
            )
        return chunks


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def error_body(message: str, kind: str) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
