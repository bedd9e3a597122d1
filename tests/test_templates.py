"""Client-side chat templates: each family's rendering, written out in full."""

from __future__ import annotations

import pytest

from thinkq.measure.templates import (
    END_TEXTS,
    FREE,
    TAGS,
    TEMPLATES,
    THINKING,
    Template,
    get_template,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Format {x} as {0}?"},  # braces are content, not fields
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "6 * 7?"},
]

EOS_DS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
USER_DS, ASSISTANT_DS = "<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>"

CHATML = (
    "<|im_start|>system\nBe brief.<|im_end|>\n"
    "<|im_start|>user\nFormat {x} as {0}?<|im_end|>\n"
    "<|im_start|>assistant\nDone.<|im_end|>\n"
    "<|im_start|>user\n6 * 7?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

RENDERED = {
    "chatml": CHATML,
    "qwen3": CHATML,
    "deepseek-r1": (
        "Be brief."
        f"{USER_DS}Format {{x}} as {{0}}?"
        f"{ASSISTANT_DS}Done.{EOS_DS}"
        f"{USER_DS}6 * 7?"
        f"{ASSISTANT_DS}"
    ),
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nFormat {x} as {0}?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nDone.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n6 * 7?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "raw": "Be brief.\n\nFormat {x} as {0}?\n\nDone.\n\n6 * 7?\n\n",
}


def test_every_template_is_rendered_here() -> None:
    assert set(RENDERED) == set(TEMPLATES)
    assert all(template.name == name for name, template in TEMPLATES.items())


@pytest.mark.parametrize("name", list(RENDERED))
def test_render_conversation(name: str) -> None:
    assert TEMPLATES[name].render(CONVERSATION) == RENDERED[name]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chatml", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        ("deepseek-r1", f"{USER_DS}hi{ASSISTANT_DS}"),
        (
            "llama3",
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        ("raw", "hi\n\n"),
    ],
)
def test_render_single_question(name: str, expected: str) -> None:
    assert TEMPLATES[name].render([{"role": "user", "content": "hi"}]) == expected


def test_render_no_messages_opens_the_assistant_turn() -> None:
    assert TEMPLATES["qwen3"].render([]) == "<|im_start|>assistant\n"


def test_unknown_role_is_written_as_given() -> None:
    rendered = TEMPLATES["chatml"].render([{"role": "tool", "content": "42"}])
    assert rendered.startswith("<|im_start|>tool\n42<|im_end|>\n")


def test_custom_template_with_roles_and_formats() -> None:
    template = Template(
        "custom",
        "[{role}] {content}\n",
        "[A] ",
        ("<end>",),
        FREE,
        roles=(("user", "U"),),
        formats=(("assistant", "[{role}] {content} <end>\n"),),
    )
    rendered = template.render(CONVERSATION[1:])
    assert rendered == "[U] Format {x} as {0}?\n[assistant] Done. <end>\n[U] 6 * 7?\n[A] "


@pytest.mark.parametrize(
    ("name", "thinking"),
    [("chatml", FREE), ("qwen3", TAGS), ("deepseek-r1", TAGS), ("llama3", FREE), ("raw", FREE)],
)
def test_default_thinking(name: str, thinking: object) -> None:
    assert TEMPLATES[name].thinking == thinking


def test_thinking_delimiters() -> None:
    assert (TAGS.open, TAGS.close, TAGS.end_texts) == ("<think>\n", "\n</think>\n\n", ("</think>",))
    assert (FREE.open, FREE.close, FREE.end_texts) == ("", "\n\n", ())
    assert THINKING == {"tags": TAGS, "free": FREE}


@pytest.mark.parametrize(
    ("name", "ends"),
    [
        ("chatml", ("<|im_end|>", "<|endoftext|>")),
        ("qwen3", ("<|im_end|>", "<|endoftext|>")),
        ("deepseek-r1", (EOS_DS,)),
        ("llama3", ("<|eot_id|>", "<|end_of_text|>")),
        ("raw", ()),
    ],
)
def test_end_texts(name: str, ends: tuple[str, ...]) -> None:
    assert TEMPLATES[name].end_texts == ends


def test_end_texts_cover_every_template_once() -> None:
    for template in TEMPLATES.values():
        assert set(template.end_texts) <= set(END_TEXTS)
    assert {"</s>", "<|end|>", "<end_of_turn>", "<eos>"} <= set(END_TEXTS)
    assert len(END_TEXTS) == len(set(END_TEXTS))
    assert END_TEXTS[:2] == ("<|im_end|>", "<|endoftext|>")  # in the templates' order


@pytest.mark.parametrize("name", list(RENDERED))
def test_get_template(name: str) -> None:
    assert get_template(name) is TEMPLATES[name]


def test_get_template_server_is_none() -> None:
    assert get_template("server") is None


def test_get_template_unknown() -> None:
    with pytest.raises(ValueError, match=r"^template: unknown template 'qwen'") as info:
        get_template("qwen")
    assert "(one of chatml, qwen3, deepseek-r1, llama3, raw, server)" in str(info.value)
