"""Graders on realistic and adversarial model outputs, one table per benchmark family.

Each case is (output, expected extracted answer or None, expected correctness). The
items are built here, so these tests need no data files.
"""

from __future__ import annotations

import pytest

from thinkq.errors import DatasetError
from thinkq.measure import (
    BBH_TASKS,
    Grade,
    Item,
    grade,
    grade_aime,
    grade_bbh,
    grade_choice,
    grade_cruxeval,
    grade_gsm8k,
)

ABCD = ("A", "B", "C", "D")


def item(dataset: str, answer: str, choices: tuple[str, ...] = ()) -> Item:
    return Item(dataset, "t1", "prompt", answer, choices)


# ---------------------------------------------------------------- GSM8K

GSM8K = [
    ("She sells 9 eggs at $2 each.\nThe answer is 18", "18", True),
    ("9 * 2 = 18 dollars per day.", "18", True),  # no cue: the last number
    ("#### 18", "18", True),
    ("The answer is $18.", "18", True),
    ("The answer is $1,080.00", "1080", False),
    ("The answer is 18.00", "18", True),
    ("So the final answer is \\boxed{18}.", "18", True),
    ("The answer is \\boxed{\\$18}", "18", True),
    ("The answer is 17. Wait, I made an error: 9 * 2 = 18. The answer is 18.", "18", True),
    ("The answer is 18. Wait, 9 + 2 = 11, so the answer is 11.", "11", False),
    ("The answer is 18, computed in 3 steps.", "18", True),  # first number after the cue
    ("She made 18 dollars, 9 eggs, 2 dollars each", "2", False),  # no cue: the last number
    ("", None, False),
    ("I cannot solve this problem.", None, False),
    ("The answer is eighteen.", None, False),
    ("The answer is 1.8", "1.8", False),
    ("The answer is 180", "180", False),
    ("Answer: 18%", "18", True),
    ("The answer is 18. Is this answer 100% right? Yes.", "18", True),  # 'answer' alone
    ("Final answer: 18 dollars", "18", True),
]


@pytest.mark.parametrize(("output", "extracted", "correct"), GSM8K)
def test_gsm8k(output, extracted, correct):
    result = grade_gsm8k(item("gsm8k", "18"), output)
    assert (result.extracted, result.correct) == (extracted, correct)


@pytest.mark.parametrize(
    ("answer", "output", "correct"),
    [
        ("-5", "The temperature fell, so the answer is \u22125", True),  # unicode minus
        ("-5", "The answer is 5", False),
        ("1000", "The answer is 1,000 dollars.", True),
        ("1000", "The answer is 1000.", True),
        ("0.5", "The answer is .5", True),
        ("70", "A 70% discount, so she pays 30. The answer is 30", False),
        ("5", "x2 + y3 = 5", True),  # digits glued to letters are not numbers
    ],
)
def test_gsm8k_number_forms(answer, output, correct):
    assert grade_gsm8k(item("gsm8k", answer), output).correct is correct


# ---------------------------------------------------------------- AIME

AIME = [
    ("Thus m + n = 25, and the answer is \\boxed{25}.", "25", True),
    ("\\boxed{025}", "25", True),
    ("\\boxed{ 25 }", "25", True),
    ("\\boxed{\\text{25}}", "25", True),
    ("\\boxed{25 \\text{ minutes}}", "25", True),
    ("First guess \\boxed{24}. No, recounting gives \\boxed{25}.", "25", True),
    ("Recounting: \\boxed{25}. Then the error: \\boxed{24}", "24", False),
    ("The answer is 25.", "25", True),
    ("We get 12 + 13 = 25", "25", True),
    ("The answer is 25, since 5^2 = 25 and 3 < 4", "25", True),
    ("\\boxed{\\frac{1}{4}}", "\\frac{1}{4}", False),
    ("\\boxed{1025}", "1025", False),  # outside 0-999
    ("The answer is 2.5", None, False),
    ("", None, False),
    ("\\boxed{", None, False),  # unclosed: no boxed answer, no integer
    ("\\boxed{x^{2}} and so 25", "x^{2}", False),
]


@pytest.mark.parametrize(("output", "extracted", "correct"), AIME)
def test_aime(output, extracted, correct):
    result = grade_aime(item("aime", "025"), output)
    assert (result.extracted, result.correct) == (extracted, correct)


def test_aime_reference_with_leading_zeros_equals_the_integer():
    assert grade_aime(item("aime", "007"), "\\boxed{7}").correct
    assert grade_aime(item("aime", "7"), "\\boxed{007}").correct
    assert grade_aime(item("aime", "0"), "The answer is 0").correct


def test_aime_out_of_range_says_why():
    result = grade_aime(item("aime", "7"), "so the answer is 123456789012345678901234567890")
    assert not result.correct
    assert result.reason == "not an integer from 0 to 999"


# ---------------------------------------------------------------- GPQA and ARC

CHOICE = [
    ("Answer: C", "C", True),
    ("The options are compared below.\n\nAnswer: $C$", "C", True),
    ("**Answer:** (C)", "C", True),
    ("The answer is (C).", "C", True),
    ("The correct answer is option C because the others fail.", "C", True),
    ("The final answer is \\boxed{C}", "C", True),
    ("\\boxed{\\text{C}}", "C", True),
    ("Answer: B\nHmm, B ignores the sign. Answer: C", "C", True),  # revision wins
    ("Answer: C\nOn reflection the sign flips. Answer: B", "B", False),
    ("After eliminating A and B, D remains.\nD", "D", False),  # a bare final letter
    ("(C)", "C", True),
    ("Answer: Because the energy is conserved, C.", None, False),  # 'B' of 'Because'
    ("Answer: Cyclohexane is formed", None, False),
    ("The answer is a secret", None, False),  # lower-case 'a' is not an option
    ("Answer: E", None, False),  # not one of the options
    ("A and B are both plausible", None, False),
    ("", None, False),
    ("\uff21\uff4e\uff53\uff57\uff45\uff52: \uff23", "C", True),  # full-width "Answer: C"
    ("answers: none\nanswer: C", "C", True),
    ("Options (A) and (C) are close; hard to say.", None, False),  # no cue, no bare letter
    ("I would answer D, but the answer is C", "C", True),
]


@pytest.mark.parametrize(("output", "extracted", "correct"), CHOICE)
def test_choice(output, extracted, correct):
    result = grade_choice(item("gpqa", "C", ABCD), output)
    assert (result.extracted, result.correct) == (extracted, correct)


def test_arc_uses_the_same_letters_including_e():
    arc = item("arc_challenge", "E", ("A", "B", "C", "D", "E"))
    assert grade(arc, "Answer: E").correct
    assert not grade(arc, "Answer: 5").correct  # labels 1-5 are shown as letters A-E
    three = item("arc_challenge", "B", ("A", "B", "C"))
    assert grade(three, "Answer: D").extracted is None


# ---------------------------------------------------------------- BBH


def bbh(task: str, answer: str, choices: tuple[str, ...] = ()) -> Item:
    return item(f"bbh/{task}", answer, choices)


BBH = [
    (bbh("date_understanding", "(B)", tuple("ABCDEF")), "So the answer is (B).", "(B)", True),
    (bbh("date_understanding", "(B)", tuple("ABCDEF")), "So the answer is B.", "(B)", True),
    (
        bbh("date_understanding", "(B)", tuple("ABCDEF")),
        "(A) is wrong. So the answer is (F).",
        "(F)",
        False,
    ),
    (bbh("date_understanding", "(B)", tuple("ABCDEF")), "Tomorrow is 12/25/1937 (B)", "(B)", True),
    (
        bbh("date_understanding", "(B)", tuple("ABCDEF")),
        "Both (A) and (B) fit; I pick (A)",
        "(A)",
        False,
    ),
    (bbh("boolean_expressions", "True"), "not False is True. So the answer is True.", "True", True),
    (bbh("boolean_expressions", "True"), "So the answer is False.", "False", False),
    (bbh("boolean_expressions", "False"), "It evaluates to false", "false", True),
    (bbh("boolean_expressions", "False"), "Truefalse", None, False),  # not a word
    (bbh("web_of_lies", "No"), "Fidel lies, so the answer is No.", "No", True),
    (bbh("web_of_lies", "No"), "No doubt about it: the answer is Yes.", "Yes", False),
    (bbh("sports_understanding", "yes"), "So the answer is yes.", "yes", True),
    (
        bbh("sports_understanding", "yes"),
        "Nobody knows; yesterday it was, so the answer is no",
        "no",
        False,
    ),
    (bbh("formal_fallacies", "invalid"), "So the answer is invalid.", "invalid", True),
    (bbh("formal_fallacies", "valid"), "So the answer is invalid.", "invalid", False),
    (bbh("formal_fallacies", "valid"), "The argument is deductively valid.", "valid", True),
    (bbh("object_counting", "11"), "5 + 6 = 11. So the answer is 11.", "11", True),
    (bbh("object_counting", "11"), "I count 3, 4, 11, then 12 items", "12", False),
    (bbh("multistep_arithmetic_two", "-50"), "So the answer is \u221250.", "-50", True),
    (bbh("multistep_arithmetic_two", "-50"), "So the answer is 50.", "50", False),
    (bbh("multistep_arithmetic_two", "-50"), "", None, False),
    (bbh("dyck_languages", "] ] >"), "So the answer is ] ] >.", "] ] >", True),
    (bbh("dyck_languages", "] ] >"), "So the answer is ]]>", "]]>", True),
    (bbh("dyck_languages", "] ] >"), "So the answer is ] >.", "] >", False),
    (
        bbh("word_sorting", "barn damp dot"),
        "So the answer is barn damp dot.",
        "barn damp dot",
        True,
    ),
    (
        bbh("word_sorting", "barn damp dot"),
        "So the answer is Barn  damp dot",
        "Barn  damp dot",
        True,
    ),
    (
        bbh("word_sorting", "barn damp dot"),
        "So the answer is damp barn dot.",
        "damp barn dot",
        False,
    ),
    (
        bbh("word_sorting", "barn damp dot"),
        "barn\ndamp dot",
        "damp dot",
        False,
    ),  # no cue: last line
    (
        bbh("ruin_names", "dearth, wind, & fire"),
        "So the answer is dearth, wind, & fire.",
        "dearth, wind, & fire",
        True,
    ),
]


@pytest.mark.parametrize(
    ("question", "output", "extracted", "correct"),
    BBH,
    ids=[f"{case[0].dataset}-{i}" for i, case in enumerate(BBH)],
)
def test_bbh(question, output, extracted, correct):
    result = grade_bbh(question, output)
    assert (result.extracted, result.correct) == (extracted, correct)


def test_every_bbh_kind_is_graded():
    assert set(BBH_TASKS.values()) == {
        "boolean",
        "choice",
        "number",
        "text",
        "valid_invalid",
        "yes_no",
    }
    assert {case[0].dataset.removeprefix("bbh/") for case in BBH} >= {
        "boolean_expressions",
        "date_understanding",
        "dyck_languages",
        "formal_fallacies",
        "object_counting",
        "web_of_lies",
        "word_sorting",
    }


# ---------------------------------------------------------------- CRUXEval

CRUX = [
    ("[ANSWER]\nassert f([1, 2]) == [(4, 1), (2, 3)]\n[/ANSWER]", "[(4, 1), (2, 3)]", True),
    ("[ANSWER]assert f('a') == [(4,1),(2,3)][/ANSWER]", "[(4,1),(2,3)]", True),
    ("[ANSWER]\n[(4, 1), (2, 3)]\n[/ANSWER]", "[(4, 1), (2, 3)]", True),
    ("The output is\n```python\nassert f(x) == [(4, 1), (2, 3)]\n```", "[(4, 1), (2, 3)]", True),
    ("assert f(x) == [(4, 1), (2, 3)]", "[(4, 1), (2, 3)]", True),
    ("Tracing the loop...\n[(4, 1), (2, 3)]", "[(4, 1), (2, 3)]", True),
    ("[ANSWER]\nassert f(x) == [(4, 1), (2, 4)]\n[/ANSWER]", "[(4, 1), (2, 4)]", False),
    ("[ANSWER]\nassert f(x) == [[4, 1], [2, 3]]\n[/ANSWER]", "[[4, 1], [2, 3]]", False),
    ("[ANSWER]\nassert f(x) == [(4, 1)] + [(2, 3)]\n[/ANSWER]", None, False),  # not a literal
    ("[ANSWER]\nassert f(x) == sorted([(2, 3), (4, 1)])\n[/ANSWER]", None, False),
    ("[ANSWER]\nassert f(x) != [(4, 1), (2, 3)]\n[/ANSWER]", None, False),
    ("[ANSWER]\nassert f(x) == [(4, 1), (2, 3)\n[/ANSWER]", None, False),  # syntax error
    ("[ANSWER]\nassert f(x) == [(4, 1)]\n[/ANSWER]\nOops: [(4, 1), (2, 3)]", "[(4, 1)]", False),
    ("", None, False),
    ("I am not sure.", None, False),
]


@pytest.mark.parametrize(("output", "extracted", "correct"), CRUX)
def test_cruxeval(output, extracted, correct):
    result = grade_cruxeval(item("cruxeval", "[(4, 1), (2, 3)]"), output)
    assert (result.extracted, result.correct) == (extracted, correct)


@pytest.mark.parametrize(
    ("answer", "output", "correct"),
    [
        ("'abc'", '[ANSWER]\nassert f("abc") == "abc"\n[/ANSWER]', True),  # quotes differ
        ("'a == b'", "[ANSWER]\nassert f(s) == 'a == b'\n[/ANSWER]", True),  # '==' in string
        ("{'a': 1, 'b': 2}", "[ANSWER]\nassert f(d) == {'b': 2, 'a': 1}\n[/ANSWER]", True),
        ("True", "[ANSWER]\nassert f(1) == True\n[/ANSWER]", True),
        ("-3", "[ANSWER]\nassert f(1) == -3\n[/ANSWER]", True),
        ("'\\\\d'", "[ANSWER]\nassert f(1) == '\\d'\n[/ANSWER]", True),  # invalid escape
        ("''", "[ANSWER]\nassert f('') == ''\n[/ANSWER]", True),
        ("set()", "[ANSWER]\nassert f(1) == set()\n[/ANSWER]", True),
        ("(1,)", "[ANSWER]\nassert f(1) == (1)\n[/ANSWER]", False),
    ],
)
def test_cruxeval_compares_values_not_text(answer, output, correct):
    assert grade_cruxeval(item("cruxeval", answer), output).correct is correct


MALICIOUS = [
    "[ANSWER]\nassert f(1) == __import__('os').system('touch {marker}')\n[/ANSWER]",
    "[ANSWER]\n__import__('os').system('touch {marker}')\n[/ANSWER]",
    "assert f(1) == exec(\"open('{marker}', 'w')\")",
    "eval(\"open('{marker}', 'w')\")",
    "[ANSWER]\nassert f(1) == (lambda: open('{marker}', 'w'))()\n[/ANSWER]",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_cruxeval_never_runs_model_output(tmp_path, template):
    marker = tmp_path / "pwned"
    result = grade_cruxeval(item("cruxeval", "0"), template.format(marker=marker))
    assert result == Grade(False, None, "no literal found")
    assert not marker.exists()


def test_cruxeval_survives_huge_and_deep_outputs():
    deep = "[ANSWER]\nassert f(1) == " + "[" * 100_000 + "]" * 100_000 + "\n[/ANSWER]"
    assert not grade_cruxeval(item("cruxeval", "[]"), deep).correct
    digits = "[ANSWER]\nassert f(1) == " + "9" * 50_000 + "\n[/ANSWER]"
    assert not grade_cruxeval(item("cruxeval", "9"), digits).correct


def test_cruxeval_reference_that_is_not_a_literal_is_a_dataset_error():
    with pytest.raises(DatasetError, match=r"^answer: cruxeval item t1 has no literal"):
        grade_cruxeval(item("cruxeval", "f(1)"), "[ANSWER]\n1\n[/ANSWER]")


# ---------------------------------------------------------------- dispatch


def test_grade_dispatches_on_the_family():
    assert grade(item("gsm8k", "18"), "The answer is 18").correct
    assert grade(item("aime", "18"), "\\boxed{18}").correct
    assert grade(item("gpqa", "A", ABCD), "Answer: A").correct
    assert grade(bbh("navigate", "Yes"), "So the answer is Yes.").correct
    assert grade(item("cruxeval", "18"), "[ANSWER]\nassert f(1) == 18\n[/ANSWER]").correct
    with pytest.raises(DatasetError, match=r"^dataset: no grader for 'mmlu'"):
        grade(item("mmlu", "A"), "Answer: A")


def test_a_grade_says_why():
    assert grade(item("gsm8k", "18"), "The answer is 18").reason == "match"
    assert grade(item("gsm8k", "18"), "The answer is 19").reason == "mismatch"
    assert grade(item("gsm8k", "18"), "no idea").reason == "no answer found"
