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

__all__ = [
    "aime_prompt",
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
