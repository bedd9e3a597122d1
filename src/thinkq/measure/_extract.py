"""Reading an answer out of a model's output: the text helpers of the graders.

The output is normalised (:func:`clean`: NFKC, unicode minus, the last
:data:`MAX_OUTPUT_CHARS` characters) and searched for the usual answer markers:
the text after the last answer cue, the last ``\\boxed{}``, numbers, option letters,
keywords (True/False, Yes/No, valid/invalid) and free-text answers. Comparing with
the reference is left to :mod:`thinkq.measure.graders`.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "INTEGER",
    "MAX_OUTPUT_CHARS",
    "NUMBER",
    "SIGNED_INTEGER",
    "WORDS",
    "after_last_cue",
    "choice_letter",
    "clean",
    "cued_or_last",
    "last_boxed",
    "text_answer",
    "unwrap_latex",
]

#: Longest output a grader reads, in characters; the tail is kept (answers come last).
MAX_OUTPUT_CHARS = 200_000

# "answer" alone is no cue ("is this answer right?"): it must be followed by is, be or ':'
_CUE = re.compile(r"(?i)\banswer\b\s*(?:is|would\s+be|should\s+be|:)\s*:?|####")
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.])-?\.\d+")
INTEGER = re.compile(r"(?<![\d.])\d+(?!\d|\.\d)")
SIGNED_INTEGER = re.compile(r"(?<![\w.])-?\d+(?!\d|\.\d)")
WORDS = {
    "boolean": re.compile(r"(?i)\b(true|false)\b"),
    "yes_no": re.compile(r"(?i)\b(yes|no)\b"),
    "valid_invalid": re.compile(r"(?i)\b(valid|invalid)\b"),
}


def clean(output: str) -> str:
    """NFKC (full-width letters and digits), the unicode minus as ``-``, tail only."""
    text = unicodedata.normalize("NFKC", output[-MAX_OUTPUT_CHARS:])
    return text.replace("\u2212", "-").replace("\u2013", "-")


def after_last_cue(text: str) -> str | None:
    """The text after the last answer cue (``answer is``, ``Answer:``, ``####``), if any."""
    cues = list(_CUE.finditer(text))
    return text[cues[-1].end() :] if cues else None


def last_boxed(text: str) -> str | None:
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


def unwrap_latex(text: str) -> str:
    """``text`` without LaTeX text macros, spacing, degree signs, ``$`` and ``\\%``."""
    text = re.sub(r"\\(?:text|textbf|mathrm|mathbf|mbox)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\^\{?\\circ\}?|\\[,!;: ]|\\%|\\\$|~|\$", "", text)
    return text.strip()


_LETTER_CUE = re.compile(
    r"(?i:\banswer\b\s*(?:is|would\s+be|should\s+be|:)\s*:?)"
    r"[\s*$\[{]*(?:\\(?:boxed|textbf|text|mathrm)\{)?\s*(?:(?i:option|choice)\s+)?"
    r"\(?([A-Z])(?![A-Za-z0-9])"
)
_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text\{)?\(?([A-Z])\)?\}?\s*\}")
_BARE_LETTER = re.compile(r"[\s*\[(]*([A-Z])[\s*\])]*[.]?\s*")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")


def choice_letter(text: str, letters: tuple[str, ...], *, parens: bool) -> str | None:
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


def cued_or_last(text: str, pattern: re.Pattern[str]) -> str | None:
    """The first match of ``pattern`` after the last cue, else its last match anywhere."""
    after = after_last_cue(text)
    found = pattern.search(after) if after is not None else None
    if found is not None:
        return found.group()
    every = pattern.findall(text)
    return every[-1] if every else None


def text_answer(text: str) -> str | None:
    """A free-text answer: the line after the last cue (else the last line), unquoted."""
    after = after_last_cue(text)
    if after is None:
        lines = [line for line in text.splitlines() if line.strip()]
        after = lines[-1] if lines else ""
    answer = after.strip().split("\n")[0].strip().strip("*`\"'").strip()
    answer = answer[:-1].rstrip() if answer.endswith(".") else answer
    return answer or None
