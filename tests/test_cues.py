"""Answer cues: what budget forcing appends after the thinking, per benchmark family.

Besides each cue's fields, every family is checked end to end with its grader: the cue
followed by a typical continuation (cut at the cue's stop strings, as a server cuts
it) must grade as correct.
"""

from __future__ import annotations

import pytest

from thinkq.measure import BBH_TASKS, DATASETS, Item, grade
from thinkq.measure.prompts import (
    Cue,
    aime_prompt,
    answer_cue,
    bbh_prompt,
    choice_prompt,
    cruxeval_prompt,
    gsm8k_prompt,
)

ABCD = ("A", "B", "C", "D")
OPTIONS = [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")]
CODE = "def f(s):\n    return s[::-1]"


def cut(text: str, cue: Cue) -> str:
    """``text`` up to the first of ``cue.stop``, as the server returns it."""
    ends = [text.index(stop) for stop in cue.stop if stop in text]
    return text[: min(ends)] if ends else text


CASES = [
    # dataset, prompt, reference, continuation the model writes after the cue
    ("gsm8k", gsm8k_prompt("9 eggs at $2?"), "18", " 18\nI hope that helps."),
    ("aime", aime_prompt("Find N."), "204", "204}.\n"),
    ("gpqa", choice_prompt("Which?", OPTIONS), "C", " C\n\nExplanation: ..."),
    ("arc_challenge", choice_prompt("Which?", OPTIONS), "B", " B\n"),
    ("bbh/boolean_expressions", bbh_prompt("not True is", kind="boolean"), "False", " False.\n"),
    ("bbh/date_understanding", bbh_prompt("Which date?", kind="choice"), "(A)", " (A).\n"),
    ("cruxeval", cruxeval_prompt(CODE, "'abc'"), "'cba'", "'cba'\n[/ANSWER]"),
]


@pytest.mark.parametrize(("dataset", "prompt", "reference", "continuation"), CASES)
def test_cue_then_continuation_grades_correct(
    dataset: str, prompt: str, reference: str, continuation: str
) -> None:
    cue = answer_cue(dataset, prompt)
    multiple_choice = dataset in ("gpqa", "arc_challenge", "bbh/date_understanding")
    choices = ABCD if multiple_choice else ()
    item = Item(dataset, "1", prompt, reference, choices)
    result = grade(item, cue.text + cut(continuation, cue))
    assert result.correct, result


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("gsm8k", Cue("The answer is", 16, ("\n",))),
        ("aime", Cue("The final answer is \\boxed{", 12, ("}", "\n"))),
        ("aime24", Cue("The final answer is \\boxed{", 12, ("}", "\n"))),
        ("aime25", Cue("The final answer is \\boxed{", 12, ("}", "\n"))),
        ("gpqa", Cue("Answer:", 4, ("\n",))),
        ("arc_challenge", Cue("Answer:", 4, ("\n",))),
        ("bbh", Cue("So the answer is", 24, ("\n",))),
    ],
)
def test_cue_fields(dataset: str, expected: Cue) -> None:
    assert answer_cue(dataset, "any prompt") == expected


@pytest.mark.parametrize("task", sorted(BBH_TASKS))
def test_every_bbh_task_has_the_bbh_cue(task: str) -> None:
    assert answer_cue(f"bbh/{task}", "q") == answer_cue("bbh", "q")


def test_every_dataset_has_a_cue() -> None:
    for name in DATASETS:
        cue = answer_cue(name, cruxeval_prompt(CODE, "'x'"))
        assert cue.text
        assert cue.max_tokens > 0


def test_cruxeval_cue_restates_the_items_assertion() -> None:
    prompt = cruxeval_prompt(CODE, "[1, (2, 3)], {'k': 'v'}")
    cue = answer_cue("cruxeval", prompt)
    assert cue == Cue("[ANSWER]\nassert f([1, (2, 3)], {'k': 'v'}) == ", 64, ("[/ANSWER]", "\n"))


def test_cruxeval_cue_skips_the_worked_example() -> None:
    # the prompt's example asserts f('x9j'); the item's own assertion comes last
    prompt = cruxeval_prompt(CODE, "'hbtofdeiequ'")
    assert "assert f('x9j') == ??" in prompt
    assert answer_cue("cruxeval", prompt).text == "[ANSWER]\nassert f('hbtofdeiequ') == "


def test_cruxeval_cue_with_an_input_over_several_lines() -> None:
    prompt = cruxeval_prompt(CODE, '"""line one\nline two"""')
    assert answer_cue("cruxeval", prompt).text == (
        '[ANSWER]\nassert f("""line one\nline two""") == '
    )


def test_cruxeval_cue_with_an_input_holding_parentheses_and_equals() -> None:
    prompt = cruxeval_prompt(CODE, "'a) == (b', 2")
    assert answer_cue("cruxeval", prompt).text == "[ANSWER]\nassert f('a) == (b', 2) == "


@pytest.mark.parametrize("prompt", ["", "Predict the output of f.", "assert f(1) == 2"])
def test_cruxeval_cue_without_an_assertion_opens_the_answer(prompt: str) -> None:
    assert answer_cue("cruxeval", prompt).text == "[ANSWER]\n"


@pytest.mark.parametrize("dataset", ["mmlu", "", "GSM8K", "gsm8k_cot", "bbhx/date"])
def test_unknown_dataset(dataset: str) -> None:
    with pytest.raises(ValueError, match=r"^dataset: no answer cue for ") as info:
        answer_cue(dataset, "prompt")
    assert repr(dataset) in str(info.value)
