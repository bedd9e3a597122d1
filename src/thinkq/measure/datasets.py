"""The six benchmark sets of the paper's Table I, as lists of :class:`Item`.

:func:`load_dataset` reads AIME (2024 and 2025), GSM8K, GPQA Diamond, CRUXEval
(output prediction), BIG-Bench Hard and ARC-Challenge from local copies (``data_dir``,
laid out as ``shared/data/benchmarks``) or, without ``data_dir``, from Hugging Face
``datasets`` (the optional ``hf`` extra). Every item carries the prompt the model
sees, with the answer format its grader (:mod:`thinkq.measure.graders`) reads.

GPQA's authors ask that its questions not be reposted in plain text: the ``repr`` of
a GPQA item hides its prompt, and no message of this package quotes an item.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from thinkq.errors import DatasetError
from thinkq.measure import _sources
from thinkq.measure._sources import Row
from thinkq.measure.graders import BBH_TASKS
from thinkq.measure.prompts import (
    aime_prompt,
    bbh_prompt,
    choice_prompt,
    cruxeval_prompt,
    gsm8k_prompt,
)

__all__ = ["DATASETS", "PRIVATE_DATASETS", "Item", "load_dataset", "sample_items"]

#: The names :func:`load_dataset` accepts.
DATASETS: tuple[str, ...] = (
    "aime",
    "aime24",
    "aime25",
    "arc_challenge",
    "bbh",
    "cruxeval",
    "gpqa",
    "gsm8k",
)

#: Datasets whose items must never be shown in plain text.
PRIVATE_DATASETS: frozenset[str] = frozenset({"gpqa"})

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True, repr=False)
class Item:
    """One benchmark question, ready to send to a model.

    Parameters
    ----------
    dataset:
        The query type: ``"gsm8k"``, ``"aime"``, ``"gpqa"``, ``"cruxeval"``,
        ``"arc_challenge"`` or ``"bbh/<task>"``.
    item_id:
        Stable identifier, unique within ``dataset`` (the source's id where it has
        one, else the 0-based position in the source file).
    prompt:
        The full text sent to the model, with the answer-format instruction.
    answer:
        The reference answer as the grader compares it (a number, an option letter,
        a Python literal, a BBH target).
    choices:
        The option letters of a multiple-choice item, in the order shown; ``()``
        otherwise.
    """

    dataset: str
    item_id: str
    prompt: str
    answer: str
    choices: tuple[str, ...] = ()

    @property
    def private(self) -> bool:
        """Whether the item's text must never be shown (GPQA)."""
        return self.dataset.split("/")[0] in PRIVATE_DATASETS

    def __repr__(self) -> str:
        prompt = f"<{len(self.prompt)} characters hidden>" if self.private else repr(self.prompt)
        return (
            f"Item(dataset={self.dataset!r}, item_id={self.item_id!r}, prompt={prompt}, "
            f"answer={self.answer!r}, choices={self.choices!r})"
        )


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    n: int | None = None,
    seed: int = 0,
    subset: Sequence[str] | None = None,
) -> list[Item]:
    """Load a benchmark set, optionally a deterministic sample of it.

    Parameters
    ----------
    name:
        One of :data:`DATASETS`: ``"aime"`` (2024 and 2025, 60 problems), ``"aime24"``,
        ``"aime25"``, ``"gsm8k"`` (test, 1,319), ``"gpqa"`` (Diamond, 198),
        ``"cruxeval"`` (800), ``"bbh"`` (27 tasks, 6,511) or ``"arc_challenge"``
        (test, 1,172).
    data_dir:
        The local benchmarks folder (``gsm8k/test.jsonl``, ``aime/aime24.jsonl``,
        ``aime/aime25.jsonl``, ``gpqa/gpqa_diamond.csv.gz``, ``cruxeval/cruxeval.jsonl``,
        ``bbh/<task>.json``, ``arc_challenge/ARC-Challenge-Test.jsonl``), the
        benchmark's own folder, or its file. ``None``: load from Hugging Face, which
        needs the ``hf`` extra and a network connection.
    n:
        Sample this many items (see :func:`sample_items`); ``None``, or ``n`` at
        least the size of the set, gives every item in source order.
    seed:
        Seed of the sample.
    subset:
        BBH only: the task names to load (default: all 27).

    Raises
    ------
    DatasetError
        Unknown name or task, bad ``n``, a missing or malformed file, or the ``hf``
        extra missing where ``data_dir`` is ``None``.
    """
    if name not in DATASETS:
        raise DatasetError(
            f"name: unknown dataset {name!r} (one of {', '.join(DATASETS)})", field="name"
        )
    if subset is not None and name != "bbh":
        raise DatasetError(f"subset: only bbh has tasks to choose, not {name}", field="subset")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DatasetError(f"n: must be a positive integer or None, got {n!r}", field="n")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed: must be a non-negative integer, got {seed!r}", field="seed")
    directory = None if data_dir is None else Path(data_dir)
    if directory is not None and directory.is_file() and not _one_file(name, subset):
        raise DatasetError(
            f"data_dir: {name} spans several files; give their folder, not one file",
            field="data_dir",
        )
    if name == "aime":
        items = _aime(directory, year=2024) + _aime(directory, year=2025)
    elif name in ("aime24", "aime25"):
        items = _aime(directory, year=2000 + int(name[-2:]))
    elif name == "bbh":
        items = _bbh(directory, subset)
    else:
        items = _BUILDERS[name](directory)
    return sample_items(items, n, seed=seed)


def _one_file(name: str, subset: Sequence[str] | None) -> bool:
    """Whether benchmark ``name`` (with ``subset``) is read from a single file."""
    if name == "aime":
        return False
    if name == "bbh":
        return subset is not None and (isinstance(subset, str) or len(subset) == 1)
    return True


def sample_items(items: Sequence[Item], n: int | None, *, seed: int = 0) -> list[Item]:
    """A deterministic sample of ``n`` items, in their original order.

    Each item gets a key from ``numpy.random.default_rng(seed).random(len(items))``
    (PCG64's stream is fixed across platforms and Python versions); the ``n`` items
    with the smallest keys are kept, so a sample of ``n`` items is contained in the
    sample of ``n + 1`` with the same seed. ``n`` of ``None``, or at least
    ``len(items)``, keeps every item.
    """
    if n is None or n >= len(items):
        return list(items)
    keys = np.random.default_rng(seed).random(len(items))
    chosen = np.sort(np.argsort(keys, kind="stable")[:n])
    return [items[int(i)] for i in chosen]


# ---------------------------------------------------------------- row schemas


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _GSM8KRow(_Row):
    question: str
    answer: str

    @field_validator("answer")
    @classmethod
    def _final_answer(cls, value: str) -> str:
        if "####" not in value:
            raise ValueError("has no final answer after '####'")
        return value.rsplit("####", 1)[1].strip().replace(",", "")


class _AIMERow(_Row):
    id: str
    problem: str
    answer: str
    url: str | None = None

    @field_validator("answer")
    @classmethod
    def _integer(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,3}", value.strip()):
            raise ValueError("is not an integer from 0 to 999")
        return value.strip()


class _GPQARow(_Row):
    question: str
    correct: str
    incorrect: tuple[str, str, str]
    record_id: str


class _CRUXRow(_Row):
    id: str
    code: str
    input: str
    output: str


class _BBHRow(_Row):
    input: str
    target: str


class _ARCChoice(_Row):
    text: str
    label: str


class _ARCQuestion(_Row):
    stem: str
    choices: list[_ARCChoice]


class _ARCRow(_Row):
    id: str
    question: _ARCQuestion
    answerKey: str


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], row: Row, where: str, number: int) -> _M:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "row"
        # name the field and the problem, never the value; "from None" keeps pydantic's
        # message, which quotes the row, out of tracebacks (GPQA is private)
        message = f"{where} row {number}: field '{field}' {error['msg'].lower()}"
    raise DatasetError(message, field=field) from None


# ---------------------------------------------------------------- builders


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
        row = _validate(_GSM8KRow, raw, where, i + 1)
        items.append(Item("gsm8k", str(i), gsm8k_prompt(row.question), row.answer))
    return items


def _aime(directory: Path | None, *, year: int) -> list[Item]:
    key = f"aime{year % 100}"
    rows, where = _rows(directory, key, "aime", f"{key}.jsonl")
    items = []
    for i, raw in enumerate(rows):
        if directory is None:
            raw = _hub_aime(raw, year)
        row = _validate(_AIMERow, raw, where, i + 1)
        items.append(Item("aime", _aime_id(row, year), aime_prompt(row.problem), row.answer))
    return items


def _aime_id(row: _AIMERow, year: int) -> str:
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
        row = _validate(_GPQARow, fields, where, i + 1)
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
        row = _validate(_CRUXRow, raw, where, i + 1)
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
            row = _validate(_BBHRow, raw, where, i + 1)
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
        row = _validate(_ARCRow, raw, where, i + 1)
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
