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
anything that is not a literal is wrong.
"""

from __future__ import annotations

import ast
import re
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from thinkq.errors import DatasetError

if TYPE_CHECKING:
    from thinkq.measure.datasets import Item

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

#: Longest output a grader reads, in characters; the tail is kept (answers come last).
MAX_OUTPUT_CHARS = 200_000

# "answer" alone is no cue ("is this answer right?"): it must be followed by is, be or ':'
_CUE = re.compile(r"(?i)\banswer\b\s*(?:is|would\s+be|should\s+be|:)\s*:?|####")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.])-?\.\d+")
_INTEGER = re.compile(r"(?<![\d.])\d+(?!\d|\.\d)")
_SIGNED_INTEGER = re.compile(r"(?<![\w.])-?\d+(?!\d|\.\d)")
_WORDS = {
    "boolean": re.compile(r"(?i)\b(true|false)\b"),
    "yes_no": re.compile(r"(?i)\b(yes|no)\b"),
    "valid_invalid": re.compile(r"(?i)\b(valid|invalid)\b"),
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


# ---------------------------------------------------------------- shared helpers


def _clean(output: str) -> str:
    """NFKC (full-width letters and digits), the unicode minus as ``-``, tail only."""
    text = unicodedata.normalize("NFKC", output[-MAX_OUTPUT_CHARS:])
    return text.replace("\u2212", "-").replace("\u2013", "-")


def _after_last_cue(text: str) -> str | None:
    cues = list(_CUE.finditer(text))
    return text[cues[-1].end() :] if cues else None


def _last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox``), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


def _unwrap_latex(text: str) -> str:
    text = re.sub(r"\\(?:text|textbf|mathrm|mathbf|mbox)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\^\{?\\circ\}?|\\[,!;: ]|\\%|\\\$|~|\$", "", text)
    return text.strip()


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
    text = _clean(output)
    boxed = _last_boxed(text)
    found = None
    if boxed is not None:
        found = _NUMBER.search(_unwrap_latex(boxed))
    if found is None:
        after = _after_last_cue(text)
        found = _NUMBER.search(after) if after is not None else None
    if found is None:
        numbers = list(_NUMBER.finditer(text))
        found = numbers[-1] if numbers else None
    if found is None:
        return _verdict(None, False)
    value, reference = _decimal(found.group()), _decimal(item.answer)
    extracted = format(value.normalize(), "f") if value is not None else found.group()
    return _verdict(extracted, value is not None and value == reference)


# ---------------------------------------------------------------- AIME


def grade_aime(item: Item, output: str) -> Grade:
    """AIME: an integer from 0 to 999 (``\\boxed{}`` preferred); ``"025"`` equals 25."""
    text = _clean(output)
    boxed = _last_boxed(text)
    if boxed is not None:
        content = _unwrap_latex(boxed)
        found = re.fullmatch(r"(\d+)(?:\s*[A-Za-z][A-Za-z .]*)?\.?", content)
        if found is None:
            return Grade(False, boxed, "boxed answer is not an integer")
        digits = found[1]
    else:
        after = _after_last_cue(text)
        match = _INTEGER.search(after) if after is not None else None
        if match is None:
            integers = _INTEGER.findall(text)
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

_LETTER_CUE = re.compile(
    r"(?i:\banswer\b\s*(?:is|would\s+be|should\s+be|:)\s*:?)"
    r"[\s*$\[{]*(?:\\(?:boxed|textbf|text|mathrm)\{)?\s*(?:(?i:option|choice)\s+)?"
    r"\(?([A-Z])(?![A-Za-z0-9])"
)
_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text\{)?\(?([A-Z])\)?\}?\s*\}")
_BARE_LETTER = re.compile(r"[\s*\[(]*([A-Z])[\s*\])]*[.]?\s*")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")


def _choice_letter(text: str, letters: tuple[str, ...], *, parens: bool) -> str | None:
    """The option letter a model chose: the last valid cued letter, else fallbacks.

    Fallbacks: a bare letter on the last line; with ``parens``, the last ``(X)``
    anywhere (lm-evaluation-harness's BBH filter; simple-evals has no such fallback).
    """
    matches = (*_LETTER_CUE.finditer(text), *_BOXED_LETTER.finditer(text))
    cued = [m for m in matches if m[1] in letters]
    if cued:
        return max(cued, key=lambda m: m.start(1))[1]
    lines = [line for line in text.splitlines() if line.strip()]
    if lines:
        bare = _BARE_LETTER.fullmatch(lines[-1])
        if bare and bare[1] in letters:
            return bare[1]
    if not parens:
        return None
    found = [m[1] for m in _PAREN_LETTER.finditer(text) if m[1] in letters]
    return found[-1] if found else None


def grade_choice(item: Item, output: str) -> Grade:
    """GPQA and ARC-Challenge: the option letter, one of ``item.choices``."""
    letter = _choice_letter(_clean(output), item.choices, parens=False)
    return _verdict(letter, letter == item.answer)


# ---------------------------------------------------------------- BBH


def _bbh_kind(item: Item) -> str:
    kind = BBH_TASKS.get(item.dataset.partition("/")[2], "text")
    # one ruin_names target is free text, not an option: grade it as text
    if kind == "choice" and not re.fullmatch(r"\([A-Z]\)", item.answer):
        return "text"
    return kind


def _cued_or_last(text: str, pattern: re.Pattern[str]) -> str | None:
    after = _after_last_cue(text)
    found = pattern.search(after) if after is not None else None
    if found is not None:
        return found.group()
    every = pattern.findall(text)
    return every[-1] if every else None


def _text_answer(text: str) -> str | None:
    after = _after_last_cue(text)
    if after is None:
        lines = [line for line in text.splitlines() if line.strip()]
        after = lines[-1] if lines else ""
    answer = after.strip().split("\n")[0].strip().strip("*`\"'").strip()
    answer = answer[:-1].rstrip() if answer.endswith(".") else answer
    return answer or None


def grade_bbh(item: Item, output: str) -> Grade:
    """BIG-Bench Hard: each task's answer kind, as :data:`BBH_TASKS` lists it.

    Options compare as letters, True/False, Yes/No and valid/invalid case-insensitively,
    numbers as integers; ``dyck_languages`` ignores whitespace, ``word_sorting`` and
    other free text compare after lower-casing and collapsing whitespace.
    """
    text, kind = _clean(output), _bbh_kind(item)
    if kind == "choice":
        letter = _choice_letter(text, item.choices, parens=True)
        return _verdict(None if letter is None else f"({letter})", f"({letter})" == item.answer)
    if kind in _WORDS:
        word = _cued_or_last(text, _WORDS[kind])
        return _verdict(word, word is not None and word.lower() == item.answer.lower())
    if kind == "number":
        number = _cued_or_last(text, _SIGNED_INTEGER)
        return _verdict(number, number is not None and int(number) == int(item.answer))
    answer = _text_answer(text)
    if answer is None:
        return _verdict(None, False)
    if item.dataset == "bbh/dyck_languages":
        same = re.sub(r"\s+", "", answer) == re.sub(r"\s+", "", item.answer)
    else:
        same = " ".join(answer.lower().split()) == " ".join(item.answer.lower().split())
    return _verdict(answer, same)


# ---------------------------------------------------------------- CRUXEval

_ANSWER_BLOCK = re.compile(r"\[ANSWER\](.*?)(?:\[/ANSWER\]|$)", re.DOTALL)


def _literal_of(source: str) -> tuple[object, str] | None:
    """The literal a prediction states, and its source text; never evaluates code.

    ``source`` may be an assertion (``assert f(x) == LITERAL``), a comparison
    (``f(x) == LITERAL``) or a literal. Anything else, or a parse that fails, is
    ``None``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in a prediction are its problem
        try:
            tree = ast.parse(source.strip())
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
    asserts = [node for node in tree.body if isinstance(node, ast.Assert)]
    if asserts:
        node: ast.expr = asserts[-1].test
    elif len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        node = tree.body[0].value
    else:
        return None
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq):
            return None
        node = node.comparators[0]
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    return value, ast.get_source_segment(source.strip(), node) or ""


def _prediction(text: str) -> tuple[object, str] | None:
    blocks = _ANSWER_BLOCK.findall(text)
    candidates = [blocks[-1]] if blocks else []
    body = re.sub(r"(?m)^\s*```\w*\s*$", "", blocks[-1] if blocks else text)
    lines = [line.strip().strip("`") for line in body.splitlines() if line.strip()]
    asserts = [line for line in lines if line.startswith("assert ")]
    candidates += [asserts[-1]] if asserts else []
    candidates += [lines[-1]] if lines else []
    for candidate in candidates:
        found = _literal_of(candidate)
        if found is not None:
            return found
    return None


def grade_cruxeval(item: Item, output: str) -> Grade:
    """CRUXEval output prediction: the predicted literal equals the reference literal."""
    found = _prediction(output[-MAX_OUTPUT_CHARS:])
    if found is None:
        return Grade(False, None, "no literal found")
    reference = _literal_of(item.answer)
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
