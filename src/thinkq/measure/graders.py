"""Graders: read the final answer out of a model's output and compare it with the reference.

One grader per benchmark family, each following the established harnesses
(lm-evaluation-harness, simple-evals, the CRUXEval and Qwen2.5-Math evaluations):

===============  ==========================================================  ===========
family           what is extracted                                            comparison
===============  ==========================================================  ===========
gsm8k            ``\\boxed{}``, else the first number after the last answer   numeric
                 cue, else the last number; ``,``, ``$``, ``%`` dropped
aime             ``\\boxed{}``, else after the last cue, else the last integer  integer in
                                                                              0-999
gpqa, arc        the option letter: ``Answer: C``, ``the answer is (C)``,      letter
                 ``\\boxed{C}``, a bare letter on the last line, a last ``(C)``
bbh              per task (:data:`BBH_TASKS`): option letter, True/False,      per kind
                 Yes/No, valid/invalid, integer, or exact text
cruxeval         the literal in ``[ANSWER]``, ``assert f(...) == X`` or the     ``==`` of
                 last line, parsed by :func:`ast.literal_eval`                 literals
===============  ==========================================================  ===========

Later matches win: a model that writes an answer and then revises it with a new
answer cue is graded on the revision. Model output is never executed: CRUXEval
predictions are parsed with :func:`ast.parse` and :func:`ast.literal_eval` only, and
anything that is not a literal is wrong. The answer is read out of the text in
:mod:`._extract`, CRUXEval's literals are parsed in :mod:`._literals`; the graders
here compare what those read with the reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from thinkq.errors import DatasetError
from thinkq.measure._extract import (
    INTEGER,
    MAX_OUTPUT_CHARS,
    NUMBER,
    SIGNED_INTEGER,
    WORDS,
    after_last_cue,
    choice_letter,
    clean,
    cued_or_last,
    last_boxed,
    text_answer,
    unwrap_latex,
)
from thinkq.measure._literals import literal_of, prediction

if TYPE_CHECKING:
    from thinkq.measure.items import Item

__all__ = [
    "BBH_TASKS",
    "Grade",
    "grade",
    "grade_aime",
    "grade_bbh",
    "grade_choice",
    "grade_cruxeval",
    "grade_gsm8k",
]

#: The 27 BIG-Bench Hard tasks and the kind of answer each expects.
BBH_TASKS: dict[str, str] = {
    "boolean_expressions": "boolean",
    "causal_judgement": "yes_no",
    "date_understanding": "choice",
    "disambiguation_qa": "choice",
    "dyck_languages": "text",
    "formal_fallacies": "valid_invalid",
    "geometric_shapes": "choice",
    "hyperbaton": "choice",
    "logical_deduction_five_objects": "choice",
    "logical_deduction_seven_objects": "choice",
    "logical_deduction_three_objects": "choice",
    "movie_recommendation": "choice",
    "multistep_arithmetic_two": "number",
    "navigate": "yes_no",
    "object_counting": "number",
    "penguins_in_a_table": "choice",
    "reasoning_about_colored_objects": "choice",
    "ruin_names": "choice",
    "salient_translation_error_detection": "choice",
    "snarks": "choice",
    "sports_understanding": "yes_no",
    "temporal_sequences": "choice",
    "tracking_shuffled_objects_five_objects": "choice",
    "tracking_shuffled_objects_seven_objects": "choice",
    "tracking_shuffled_objects_three_objects": "choice",
    "web_of_lies": "yes_no",
    "word_sorting": "text",
}


@dataclass(frozen=True, slots=True)
class Grade:
    """The verdict on one model output.

    Parameters
    ----------
    correct:
        Whether the extracted answer equals the reference.
    extracted:
        The answer read from the output (normalised), or ``None`` if none was found.
    reason:
        A short reason: ``"match"``, ``"mismatch"``, ``"no answer found"``, ...
    """

    correct: bool
    extracted: str | None
    reason: str


def grade(item: Item, output: str) -> Grade:
    """Grade ``output`` against ``item`` with the grader of the item's family."""
    family = item.dataset.split("/")[0]
    grader = _GRADERS.get(family)
    if grader is None:
        raise DatasetError(f"dataset: no grader for {item.dataset!r}", field="dataset")
    return grader(item, output)


def _verdict(extracted: str | None, correct: bool) -> Grade:
    if extracted is None:
        return Grade(False, None, "no answer found")
    return Grade(correct, extracted, "match" if correct else "mismatch")


# ---------------------------------------------------------------- GSM8K


def _decimal(text: str) -> Decimal | None:
    text = text.replace(",", "").replace("$", "").replace("%", "").strip().rstrip(".")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def grade_gsm8k(item: Item, output: str) -> Grade:
    """GSM8K: the final number, compared numerically (``"1,000.00"`` equals ``1000``)."""
    text = clean(output)
    boxed = last_boxed(text)
    found = None
    if boxed is not None:
        found = NUMBER.search(unwrap_latex(boxed))
    if found is None:
        after = after_last_cue(text)
        found = NUMBER.search(after) if after is not None else None
    if found is None:
        numbers = list(NUMBER.finditer(text))
        found = numbers[-1] if numbers else None
    if found is None:
        return _verdict(None, False)
    value, reference = _decimal(found.group()), _decimal(item.answer)
    extracted = format(value.normalize(), "f") if value is not None else found.group()
    return _verdict(extracted, value is not None and value == reference)


# ---------------------------------------------------------------- AIME


def grade_aime(item: Item, output: str) -> Grade:
    """AIME: an integer from 0 to 999 (``\\boxed{}`` preferred); ``"025"`` equals 25."""
    text = clean(output)
    boxed = last_boxed(text)
    if boxed is not None:
        content = unwrap_latex(boxed)
        found = re.fullmatch(r"(\d+)(?:\s*[A-Za-z][A-Za-z .]*)?\.?", content)
        if found is None:
            return Grade(False, boxed, "boxed answer is not an integer")
        digits = found[1]
    else:
        after = after_last_cue(text)
        match = INTEGER.search(after) if after is not None else None
        if match is None:
            integers = INTEGER.findall(text)
            if not integers:
                return _verdict(None, False)
            digits = integers[-1]
        else:
            digits = match.group()
    value = int(digits) if len(digits) <= 6 else 10**6
    if value > 999:
        return Grade(False, digits, "not an integer from 0 to 999")
    return _verdict(str(value), value == int(item.answer))


# ---------------------------------------------------------------- multiple choice


def grade_choice(item: Item, output: str) -> Grade:
    """GPQA and ARC-Challenge: the option letter, one of ``item.choices``."""
    letter = choice_letter(clean(output), item.choices, parens=False)
    return _verdict(letter, letter == item.answer)


# ---------------------------------------------------------------- BBH


def _bbh_kind(item: Item) -> str:
    kind = BBH_TASKS.get(item.dataset.partition("/")[2], "text")
    # one ruin_names target is free text, not an option: grade it as text
    if kind == "choice" and not re.fullmatch(r"\([A-Z]\)", item.answer):
        return "text"
    return kind


def grade_bbh(item: Item, output: str) -> Grade:
    """BIG-Bench Hard: each task's answer kind, as :data:`BBH_TASKS` lists it.

    Options compare as letters, True/False, Yes/No and valid/invalid case-insensitively,
    numbers as integers; ``dyck_languages`` ignores whitespace, ``word_sorting`` and
    other free text compare after lower-casing and collapsing whitespace.
    """
    text, kind = clean(output), _bbh_kind(item)
    if kind == "choice":
        letter = choice_letter(text, item.choices, parens=True)
        return _verdict(None if letter is None else f"({letter})", f"({letter})" == item.answer)
    if kind in WORDS:
        word = cued_or_last(text, WORDS[kind])
        return _verdict(word, word is not None and word.lower() == item.answer.lower())
    if kind == "number":
        number = cued_or_last(text, SIGNED_INTEGER)
        return _verdict(number, number is not None and int(number) == int(item.answer))
    answer = text_answer(text)
    if answer is None:
        return _verdict(None, False)
    if item.dataset == "bbh/dyck_languages":
        same = re.sub(r"\s+", "", answer) == re.sub(r"\s+", "", item.answer)
    else:
        same = " ".join(answer.lower().split()) == " ".join(item.answer.lower().split())
    return _verdict(answer, same)


# ---------------------------------------------------------------- CRUXEval


def grade_cruxeval(item: Item, output: str) -> Grade:
    """CRUXEval output prediction: the predicted literal equals the reference literal."""
    found = prediction(output[-MAX_OUTPUT_CHARS:])
    if found is None:
        return Grade(False, None, "no literal found")
    reference = literal_of(item.answer)
    if reference is None:
        raise DatasetError(
            f"answer: cruxeval item {item.item_id} has no literal reference", field="answer"
        )
    try:
        same = bool(found[0] == reference[0])
    except Exception:  # comparing two literals should not raise; a prediction never wins
        same = False
    return _verdict(found[1], same)


_GRADERS: dict[str, Callable[[Item, str], Grade]] = {
    "aime": grade_aime,
    "arc_challenge": grade_choice,
    "bbh": grade_bbh,
    "cruxeval": grade_cruxeval,
    "gpqa": grade_choice,
    "gsm8k": grade_gsm8k,
}
