"""The builders: one function per benchmark turns its rows into :class:`Item` objects.

Rows come from a local file or from the hub (:mod:`._sources`), the hub's adapted to
the local layout here, and are validated (:mod:`._schemas`); each builder writes the
prompt (:mod:`thinkq.measure.prompts`) and the reference answer its grader reads.
:func:`load_items` picks the builders of a benchmark name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thinkq.errors import DatasetError
from thinkq.measure import _sources
from thinkq.measure._schemas import (
    AIMERow,
    ARCRow,
    BBHRow,
    CRUXRow,
    GPQARow,
    GSM8KRow,
    validate,
)
from thinkq.measure._sources import Row
from thinkq.measure.graders import BBH_TASKS
from thinkq.measure.items import Item
from thinkq.measure.prompts import (
    aime_prompt,
    bbh_prompt,
    choice_prompt,
    cruxeval_prompt,
    gsm8k_prompt,
)

__all__ = ["load_items"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def load_items(name: str, directory: Path | None, subset: Sequence[str] | None) -> list[Item]:
    """Every item of benchmark ``name`` (checked by the caller), in source order.

    ``directory`` is the local folder or file, ``None`` for the hub; ``subset`` the
    BBH tasks to load (``None``: all of them).
    """
    if name == "aime":
        return _aime(directory, year=2024) + _aime(directory, year=2025)
    if name in ("aime24", "aime25"):
        return _aime(directory, year=2000 + int(name[-2:]))
    if name == "bbh":
        return _bbh(directory, subset)
    return _BUILDERS[name](directory)


def _rows(directory: Path | None, key: str, folder: str, filename: str) -> tuple[list[Row], str]:
    """Rows of one benchmark file and a label for messages."""
    if directory is None:
        return _sources.hub_rows(key), _sources.HUB[key][0]
    path = _sources.locate(directory, folder, filename)
    if filename.endswith(".csv.gz"):
        return _sources.read_csv_gz(path), path.name
    return _sources.read_jsonl(path), path.name


def _gsm8k(directory: Path | None) -> list[Item]:
    rows, where = _rows(directory, "gsm8k", "gsm8k", "test.jsonl")
    items = []
    for i, raw in enumerate(rows):
        row = validate(GSM8KRow, raw, where, i + 1)
        items.append(Item("gsm8k", str(i), gsm8k_prompt(row.question), row.answer))
    return items


def _aime(directory: Path | None, *, year: int) -> list[Item]:
    key = f"aime{year % 100}"
    rows, where = _rows(directory, key, "aime", f"{key}.jsonl")
    items = []
    for i, raw in enumerate(rows):
        if directory is None:
            raw = _hub_aime(raw, year)
        row = validate(AIMERow, raw, where, i + 1)
        items.append(Item("aime", _aime_id(row, year), aime_prompt(row.problem), row.answer))
    return items


def _aime_id(row: AIMERow, year: int) -> str:
    """``"2024-I-1"`` style ids for both years (AIME 2024's file numbers its rows 60-89)."""
    if row.id.startswith(f"{year}-"):
        return row.id
    found = re.search(r"(\d{4})_AIME_(I+)_Problems/Problem_(\d+)", row.url or "")
    if found:
        return f"{found[1]}-{found[2]}-{found[3]}"
    return f"{year}-{row.id}"


def _hub_aime(raw: Row, year: int) -> Row:
    if year == 2024:  # Maxwell-Jia/AIME_2024: ID "2024-I-1", Problem, Answer
        return {"id": raw.get("ID"), "problem": raw.get("Problem"), "answer": raw.get("Answer")}
    index = int(raw.get("problem_idx", 0))  # MathArena/aime_2025: 1-15 are I, 16-30 II
    contest = "I" if index <= 15 else "II"
    number = index if index <= 15 else index - 15
    problem, answer = raw.get("problem"), raw.get("answer")
    return {"id": f"2025-{contest}-{number}", "problem": problem, "answer": answer}


def _gpqa(directory: Path | None) -> list[Item]:
    rows, where = _rows(directory, "gpqa", "gpqa", "gpqa_diamond.csv.gz")
    items = []
    for i, raw in enumerate(rows):
        fields = {
            "question": raw.get("Question"),
            "correct": raw.get("Correct Answer"),
            "incorrect": tuple(raw.get(f"Incorrect Answer {k}") for k in (1, 2, 3)),
            "record_id": raw.get("Record ID"),
        }
        row = validate(GPQARow, fields, where, i + 1)
        options = [row.correct.strip(), *(text.strip() for text in row.incorrect)]
        order = _shuffle(row.record_id, len(options))
        letters = tuple(_LETTERS[: len(options)])
        shown = [(letters[k], options[j]) for k, j in enumerate(order)]
        answer = letters[order.index(0)]
        items.append(
            Item("gpqa", row.record_id, choice_prompt(row.question, shown), answer, letters)
        )
    return items


def _shuffle(item_id: str, size: int) -> list[int]:
    """A permutation of ``range(size)`` fixed by the item's id alone."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return [int(k) for k in rng.permutation(size)]


def _cruxeval(directory: Path | None) -> list[Item]:
    rows, where = _rows(directory, "cruxeval", "cruxeval", "cruxeval.jsonl")
    items = []
    for i, raw in enumerate(rows):
        row = validate(CRUXRow, raw, where, i + 1)
        prompt = cruxeval_prompt(row.code, row.input)
        items.append(Item("cruxeval", row.id, prompt, row.output))
    return items


def _bbh(directory: Path | None, subset: Sequence[str] | None) -> list[Item]:
    if isinstance(subset, str):
        subset = [subset]
    tasks = list(BBH_TASKS) if subset is None else list(subset)
    unknown = [task for task in tasks if task not in BBH_TASKS]
    if unknown or not tasks:
        raise DatasetError(
            f"subset: unknown BBH task {unknown[0]!r}" if unknown else "subset: is empty",
            field="subset",
        )
    items = []
    for task in tasks:
        if directory is None:
            rows, where = _sources.hub_rows("bbh", config=task), f"bbh/{task}"
        elif directory.is_file():
            rows, where = _sources.read_json_examples(directory), directory.name
        else:
            path = _sources.locate(directory, "bbh", f"{task}.json")
            rows, where = _sources.read_json_examples(path), path.name
        kind = BBH_TASKS[task]
        for i, raw in enumerate(rows):
            row = validate(BBHRow, raw, where, i + 1)
            letters = tuple(re.findall(r"^\(([A-Z])\)", row.input, flags=re.MULTILINE))
            choices = letters if kind == "choice" else ()
            prompt = bbh_prompt(row.input, kind=kind)
            items.append(Item(f"bbh/{task}", str(i), prompt, row.target.strip(), choices))
    return items


def _arc_challenge(directory: Path | None) -> list[Item]:
    rows, where = _rows(directory, "arc_challenge", "arc_challenge", "ARC-Challenge-Test.jsonl")
    items = []
    for i, raw in enumerate(rows):
        if directory is None:
            raw = _hub_arc(raw)
        row = validate(ARCRow, raw, where, i + 1)
        labels = [choice.label.strip() for choice in row.question.choices]
        key = row.answerKey.strip()
        if key not in labels:
            raise DatasetError(
                f"{where} row {i + 1}: field 'answerKey' is not one of the choice labels",
                field="answerKey",
            )
        # labels 1-5 (a few items) become A-E, as lm-evaluation-harness maps them
        letters = tuple(_LETTERS[: len(labels)])
        shown = [(letters[k], choice.text) for k, choice in enumerate(row.question.choices)]
        answer = letters[labels.index(key)]
        prompt = choice_prompt(row.question.stem, shown)
        items.append(Item("arc_challenge", row.id, prompt, answer, letters))
    return items


def _hub_arc(raw: Row) -> Row:
    """allenai/ai2_arc rows (question string, choices {text, label}) in the local layout."""
    choices: Any = raw.get("choices") or {}
    pairs = zip(choices.get("text", []), choices.get("label", []), strict=False)
    return {
        "id": raw.get("id"),
        "question": {
            "stem": raw.get("question"),
            "choices": [{"text": text, "label": label} for text, label in pairs],
        },
        "answerKey": raw.get("answerKey"),
    }


_BUILDERS: dict[str, Callable[[Path | None], list[Item]]] = {
    "arc_challenge": _arc_challenge,
    "cruxeval": _cruxeval,
    "gpqa": _gpqa,
    "gsm8k": _gsm8k,
}
