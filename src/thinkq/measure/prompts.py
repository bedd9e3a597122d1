"""Prompts: each benchmark question rendered with the answer format its grader expects.

The templates follow the established zero-shot harnesses, so that measured accuracies
are comparable with published ones:

* GSM8K and BBH end with the chain-of-thought cue of lm-evaluation-harness,
  ``"The answer is X"`` (BBH: ``"So the answer is X."``);
* AIME asks for ``\\boxed{}``, as Qwen2.5-Math's evaluation and most math harnesses do;
* GPQA and ARC-Challenge use simple-evals' multiple-choice template, whose last line
  is ``"Answer: LETTER"``;
* CRUXEval uses the output-prediction prompt of the CRUXEval paper: complete the
  assertion with a literal between ``[ANSWER]`` and ``[/ANSWER]``.

Every function returns the whole prompt as one string; the graders
(:mod:`thinkq.measure.graders`) read the format each one asks for, and the usual
variations of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "Cue",
    "aime_prompt",
    "answer_cue",
    "bbh_prompt",
    "choice_prompt",
    "cruxeval_prompt",
    "gsm8k_prompt",
]


def gsm8k_prompt(question: str) -> str:
    """A grade-school math word problem; the answer follows ``"The answer is"``."""
    return (
        "Solve the following math problem step by step. The last line of your response "
        'should be of the form "The answer is N" where N is the final number, with no '
        "units.\n\n"
        f"Question: {question.strip()}\n\nAnswer: Let's think step by step."
    )


def aime_prompt(problem: str) -> str:
    """An AIME problem; the answer is an integer from 0 to 999 inside ``\\boxed{}``."""
    return (
        f"{problem.strip()}\n\n"
        "Please reason step by step, and put your final answer within \\boxed{}. "
        "The answer is an integer from 0 to 999."
    )


def choice_prompt(question: str, options: Sequence[tuple[str, str]]) -> str:
    """A multiple-choice question with lettered options (GPQA, ARC-Challenge).

    Parameters
    ----------
    question:
        The question text.
    options:
        ``(letter, text)`` pairs in the order shown to the model.
    """
    letters = "".join(letter for letter, _ in options)
    lines = "\n".join(f"{letter}) {text.strip()}" for letter, text in options)
    return (
        "Answer the following multiple choice question. The last line of your response "
        "should be of the following format: 'Answer: $LETTER' (without quotes) where "
        f"LETTER is one of {letters}. Think step by step before answering.\n\n"
        f"{question.strip()}\n\n{lines}"
    )


def cruxeval_prompt(code: str, input_: str) -> str:
    """CRUXEval output prediction: complete ``assert f(input) == ??`` with a literal."""
    return (
        "You are given a Python function and an assertion containing an input to the "
        "function. Complete the assertion with a literal (no unsimplified expressions, no "
        "function calls) containing the output when executing the provided code on the "
        "given input, even if the function is incorrect or incomplete. Think step by "
        "step, then provide the full assertion with the correct output in [ANSWER] and "
        "[/ANSWER] tags, following the example.\n\n"
        "[PYTHON]\ndef f(s):\n    return s + 'a'\nassert f('x9j') == ??\n[/PYTHON]\n"
        "[ANSWER]\nassert f('x9j') == 'x9ja'\n[/ANSWER]\n\n"
        f"[PYTHON]\n{code.strip()}\nassert f({input_}) == ??\n[/PYTHON]\n"
    )


#: What the final answer of a BBH task looks like, by answer kind (see graders).
_BBH_FORMATS = {
    "choice": "the letter of the correct option in parentheses, e.g. (A)",
    "boolean": "True or False",
    "yes_no": "Yes or No",
    "valid_invalid": "valid or invalid",
    "number": "a single integer",
    "text": "the answer exactly as asked, on one line",
}


def bbh_prompt(question: str, *, kind: str) -> str:
    """A BIG-Bench Hard question; the answer follows ``"So the answer is"``.

    Parameters
    ----------
    question:
        The task's ``input`` text (it contains the options of multiple-choice tasks).
    kind:
        The answer kind of the task (:data:`thinkq.measure.graders.BBH_TASKS`).
    """
    return (
        f"{question.strip()}\n\n"
        "Think step by step, then finish with a line of the form "
        f'"So the answer is X." where X is {_BBH_FORMATS[kind]}.\n\n'
        "A: Let's think step by step."
    )


# ------------------------------------------------------------------- answer cues


class Cue(NamedTuple):
    """What budget forcing appends after the thinking to ask for the answer (phase 2).

    ``text`` is appended after the end of thinking; the model continues it for at most
    ``max_tokens`` tokens and stops at any of ``stop``. The grader reads
    ``text + continuation``, so the cue is the start of the answer format the prompt
    asked for.
    """

    text: str
    max_tokens: int
    stop: tuple[str, ...]


_CUES = {
    "gsm8k": Cue("The answer is", 16, ("\n",)),
    "aime": Cue("The final answer is \\boxed{", 12, ("}", "\n")),
    "gpqa": Cue("Answer:", 4, ("\n",)),
    "arc_challenge": Cue("Answer:", 4, ("\n",)),
    "bbh": Cue("So the answer is", 24, ("\n",)),
}

#: Dataset names that share another's cue (the AIME years load as ``"aime"`` items).
_FAMILIES = {"aime24": "aime", "aime25": "aime"}

_ASSERT_HEAD, _ASSERT_TAIL = "assert f(", ") == ??"


def _assertion_input(prompt: str) -> str | None:
    """The input of the item's own assertion: the last ``assert f(...) == ??``.

    The prompt's worked example has an assertion too; only the last one is the item's.
    An input may span lines (a multi-line string literal), so it is read from the last
    ``assert f(`` to the ``) == ??`` that closes it.
    """
    start = prompt.rfind(_ASSERT_HEAD)
    end = prompt.find(_ASSERT_TAIL, start) if start >= 0 else -1
    return prompt[start + len(_ASSERT_HEAD) : end] if end >= 0 else None


def answer_cue(dataset: str, prompt: str) -> Cue:
    """The answer cue of an item of ``dataset`` (``"bbh/<task>"`` counts as ``"bbh"``).

    CRUXEval's cue restates the item's assertion up to ``==``, read from its prompt,
    so the continuation is exactly the predicted literal.

    Raises
    ------
    ValueError
        ``dataset`` has no cue (not one of the benchmark families).
    """
    family = dataset.split("/")[0]
    family = _FAMILIES.get(family, family)
    if family == "cruxeval":
        input_ = _assertion_input(prompt)
        head = f"assert f({input_}) == " if input_ is not None else ""
        return Cue(f"[ANSWER]\n{head}", 64, ("[/ANSWER]", "\n"))
    try:
        return _CUES[family]
    except KeyError:
        raise ValueError(f"dataset: no answer cue for {dataset!r}") from None
