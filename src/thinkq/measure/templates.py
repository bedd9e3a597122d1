"""Chat templates: how messages become the raw text a ``/v1/completions`` endpoint continues.

Budget forcing (:mod:`thinkq.measure.forcing`) needs the raw prompt, because phase 2
continues the model's own thinking text, which the chat API cannot do. A
:class:`Template` renders messages client-side for the common model families;
``"server"`` asks the server to render them with the model's own template
(llama.cpp's ``/apply-template``, or vLLM's ``/tokenize`` then ``/detokenize``).

A template also names how thinking is delimited: ``tags`` for reasoning models that
think inside ``<think>...</think>`` (Qwen3, DeepSeek-R1), ``free`` for instruct models
whose thinking is free text before an answer cue (section IV-A's s1-style forcing).

Rendered prompts carry no beginning-of-sequence marker: a completions endpoint adds
its own when it tokenizes the prompt, and a second one changes what the model sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["BOS_TEXTS", "END_TEXTS", "TEMPLATES", "Message", "Template", "Thinking", "get_template"]

#: A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``.
Message = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Thinking:
    """How a model's thinking is opened and closed.

    Parameters
    ----------
    name:
        ``"tags"`` or ``"free"``.
    open:
        Text appended to the rendered prompt before thinking starts.
    close:
        Text appended after the forced thinking, before the answer (phase 2).
    end_texts:
        Texts that would end thinking early; their tokens are suppressed in phase 1.
    """

    name: str
    open: str
    close: str
    end_texts: tuple[str, ...]


TAGS = Thinking("tags", "<think>\n", "\n</think>\n\n", ("</think>",))
FREE = Thinking("free", "", "\n\n", ())
THINKING = {"tags": TAGS, "free": FREE}


@dataclass(frozen=True, slots=True)
class Template:
    """A chat format rendered client-side.

    Parameters
    ----------
    name:
        The name :func:`get_template` accepts.
    message:
        Format of one message, with ``{role}`` and ``{content}``.
    generation:
        Text that opens the assistant's turn.
    end_texts:
        End-of-turn and end-of-sequence texts of the family, suppressed while thinking.
    thinking:
        The family's default way of thinking.
    roles:
        Role names as the format spells them (default: as given).
    formats:
        Formats of the messages of some roles, where they differ from ``message``
        (DeepSeek closes an assistant's turn, and no other, with end of sentence).
    """

    name: str
    message: str
    generation: str
    end_texts: tuple[str, ...]
    thinking: Thinking
    roles: tuple[tuple[str, str], ...] = ()
    formats: tuple[tuple[str, str], ...] = ()

    def render(self, messages: Sequence[Message]) -> str:
        """The raw prompt for ``messages``, ending where the assistant's turn begins."""
        names, formats = dict(self.roles), dict(self.formats)
        body = "".join(
            formats.get(m["role"], self.message).format(
                role=names.get(m["role"], m["role"]), content=m["content"]
            )
            for m in messages
        )
        return body + self.generation


_CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"
_DEEPSEEK_END = "<\uff5cend\u2581of\u2581sentence\uff5c>"

TEMPLATES: dict[str, Template] = {
    "chatml": Template(
        "chatml", _CHATML, "<|im_start|>assistant\n", ("<|im_end|>", "<|endoftext|>"), FREE
    ),
    "qwen3": Template(
        "qwen3", _CHATML, "<|im_start|>assistant\n", ("<|im_end|>", "<|endoftext|>"), TAGS
    ),
    "deepseek-r1": Template(
        "deepseek-r1",
        "{role}{content}",
        "<\uff5cAssistant\uff5c>",
        (_DEEPSEEK_END,),
        TAGS,
        roles=(
            ("system", ""),
            ("user", "<\uff5cUser\uff5c>"),
            ("assistant", "<\uff5cAssistant\uff5c>"),
        ),
        formats=(("assistant", "{role}{content}" + _DEEPSEEK_END),),
    ),
    "llama3": Template(
        "llama3",
        "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|eot_id|>", "<|end_of_text|>"),
        FREE,
    ),
    "raw": Template("raw", "{content}\n\n", "", (), FREE),
}

#: Every known end-of-turn, end-of-sequence and end-of-thinking text. With a template
#: rendered by the server, those that the server's tokenizer maps to one token are
#: the model's special tokens and are suppressed while thinking.
END_TEXTS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [t for template in TEMPLATES.values() for t in template.end_texts]
        + ["</s>", "<|end|>", "<end_of_turn>", "<eos>", "<|endoftext|>"]
    )
)


#: Beginning-of-sequence texts of the common families, dropped from the start of a
#: prompt the server renders (:meth:`thinkq.measure.server.Server.apply_template`).
BOS_TEXTS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
    "<bos>",
    "<s>",
)


def get_template(name: str) -> Template | None:
    """The client-side template called ``name``; ``None`` for ``"server"``.

    Raises
    ------
    ValueError
        ``name`` is neither ``"server"`` nor a key of :data:`TEMPLATES`.
    """
    if name == "server":
        return None
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join([*TEMPLATES, "server"])
        raise ValueError(f"template: unknown template {name!r} (one of {known})") from None
