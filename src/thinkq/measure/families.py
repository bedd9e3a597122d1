"""The tokenizer and template endpoints of each server family, and how to find them.

They are not part of the OpenAI API; each family has its own:

==================  ===================================  ===============================
server              tokenize                             render a chat template
==================  ===================================  ===============================
llama-cpp-python    ``POST /extras/tokenize``            (none)
llama.cpp           ``POST /tokenize`` (``content``)     ``POST /apply-template``
vLLM                ``POST /tokenize`` (``prompt``)      ``POST /tokenize`` (``messages``)
                                                         then ``POST /detokenize``
SGLang              ``POST /v1/tokenize`` (``prompt``)   (none)
==================  ===================================  ===============================

They are tried in this order; a reply of 404, 405 or 422 (no such endpoint) or 400
(another family's body: vLLM answers the llama.cpp body so) means "try the next".
The functions take any :class:`Poster` (a :class:`~thinkq.measure.server.Server`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from thinkq.errors import ServerError
from thinkq.measure.templates import BOS_TEXTS, Message

__all__ = ["STYLES", "Poster", "find_tokenizer", "render", "tokenize_with"]

#: The tokenizer endpoints' styles, in the order they are tried.
STYLES = ("extras", "llama.cpp", "vllm", "sglang")

_MISSING = (404, 405, 422)  # an endpoint this server family does not have
#: While finding the tokenizer, also a body of another family's style: vLLM answers a
#: llama.cpp-style ``/tokenize`` body (``content``) with 400 (its validation errors).
_OTHER_STYLE = (400, *_MISSING)


class Poster(Protocol):
    """What finding the endpoints needs of a server: its model and its POST."""

    model: str

    async def post(
        self, path: str, body: dict[str, Any], *, root: bool = False
    ) -> dict[str, Any]: ...


async def tokenize_with(
    server: Poster, style: str, text: str, *, missing: tuple[int, ...]
) -> list[int] | None:
    """``text``'s ids by the ``style`` endpoint; ``None`` where it gives none.

    A reply whose status is in ``missing`` means this server has no such endpoint.
    """
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "extras": ("/extras/tokenize", {"input": text}),
        "llama.cpp": ("/tokenize", {"content": text, "add_special": False, "parse_special": True}),
        "vllm": ("/tokenize", {"model": server.model, "prompt": text, "add_special_tokens": False}),
        "sglang": ("/tokenize", {"model": server.model, "prompt": text}),
    }
    path, body = bodies[style]
    try:
        reply = await server.post(path, body, root=style != "sglang")
    except ServerError as exc:
        if exc.status in missing:
            return None
        raise
    tokens = reply.get("tokens")
    if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
        return None
    return tokens


async def find_tokenizer(server: Poster, text: str) -> tuple[str, list[int], list[int]]:
    """The first style that tokenizes ``text``, its ids, and the ids it puts before
    every text (a beginning of sequence, which llama-cpp-python adds).

    Raises
    ------
    ServerError
        No endpoint answered (``field`` ``suppress_ids``: give the ids instead).
    """
    for style in STYLES:
        tokens = await tokenize_with(server, style, text, missing=_OTHER_STYLE)
        if tokens is not None:
            bos = await tokenize_with(server, style, "", missing=_OTHER_STYLE)
            return style, tokens, bos or []
    raise ServerError(
        "suppress_ids: the server has no tokenizer endpoint (/extras/tokenize "
        "or /tokenize) that answered; give the ids to suppress with --suppress-ids",
        field="suppress_ids",
    )


async def render(server: Poster, messages: Sequence[Message]) -> str:
    """``messages`` rendered by the model's own chat template, on the server.

    A leading beginning-of-sequence text is dropped: the completions endpoint adds
    its own when it tokenizes the prompt.

    Raises
    ------
    ServerError
        The server renders no template (``field`` ``template``: choose one).
    """
    listed = [dict(m) for m in messages]
    try:
        reply = await server.post("/apply-template", {"messages": listed}, root=True)
        if isinstance(reply.get("prompt"), str):
            return _without_bos(str(reply["prompt"]))
    except ServerError as exc:
        if exc.status not in _OTHER_STYLE:
            raise
    try:
        body = {"model": server.model, "messages": listed, "add_generation_prompt": True}
        tokens = (await server.post("/tokenize", body, root=True)).get("tokens")
        if isinstance(tokens, list):
            text = await server.post(
                "/detokenize", {"model": server.model, "tokens": tokens}, root=True
            )
            rendered = text.get("prompt", text.get("content"))
            if isinstance(rendered, str):
                return _without_bos(rendered)
    except ServerError as exc:
        if exc.status not in _OTHER_STYLE:
            raise
    raise ServerError(
        "template: the server cannot render its chat template; choose one with "
        "--template (chatml, qwen3, deepseek-r1, llama3, raw)",
        field="template",
    )


def _without_bos(prompt: str) -> str:
    for bos in BOS_TEXTS:
        if prompt.startswith(bos):
            return prompt[len(bos) :]
    return prompt
