"""Measurement records: what a budget-forced run of an LLM server produced (section IV-A).

Two forms are read, by file suffix:

* ``.jsonl`` (or ``.ndjson``): one JSON object per answered query, a :class:`Record`
  with ``task``, ``budget`` (tokens), ``correct`` (true/false) and ``latency_s``
  (seconds), optionally ``thinking_tokens``, ``answer_tokens``, ``item_id``, ``run``
  and ``model``; any further keys (prompts, answers, timestamps) are kept as they are.
  A record with an ``error`` (a query that failed, as ``thinkq profile`` writes it)
  is counted in :attr:`RecordSet.failed` and left out of the measurements.
* ``.csv``: a summary, one :class:`SummaryRow` per task and budget with ``task``,
  ``budget``, ``n`` (queries), ``correct`` (how many were right), ``mean_latency_s``
  and optionally ``latency_variance_s2`` (seconds squared); further columns are kept.

Types are strict where the format has types (JSON: ``correct`` must be ``true`` or
``false``, numbers must not be strings, budgets must be integers). Every malformed
line is collected and reported as ``FILE:LINE: field: problem`` in one
:class:`RecordError`, so a user fixes a file in one pass.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from thinkq.errors import RecordError

__all__ = [
    "RECORD_SUFFIXES",
    "SUMMARY_SUFFIXES",
    "Problem",
    "Record",
    "RecordSet",
    "SummaryRow",
    "read_records",
]

RECORD_SUFFIXES = (".jsonl", ".ndjson")
SUMMARY_SUFFIXES = (".csv",)


class Problem(NamedTuple):
    """One malformed line: where it is, which field, what is wrong."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class Record(BaseModel):
    """One answered query, one line of a ``.jsonl`` file."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    task: str = Field(min_length=1)
    budget: int = Field(ge=0, description="enforced thinking-token budget l (tokens)")
    correct: bool
    latency_s: float = Field(ge=0, allow_inf_nan=False, description="end-to-end seconds")
    thinking_tokens: int | None = Field(default=None, ge=0)
    answer_tokens: int | None = Field(default=None, ge=0)
    item_id: str | int | None = None
    run: str | int | None = None
    model: str | None = None
    error: str | None = Field(default=None, description="why the query failed, if it did")

    @field_validator("task")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty name")
        return value


class SummaryRow(BaseModel):
    """One task at one budget, one row of a ``.csv`` summary (all text: parsed here)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task: str = Field(min_length=1)
    budget: int = Field(ge=0)
    n: int = Field(ge=1, description="queries measured")
    correct: int = Field(ge=0, description="how many of the n were answered correctly")
    mean_latency_s: float = Field(ge=0, allow_inf_nan=False)
    latency_variance_s2: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("task")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty name")
        return value


@dataclass(frozen=True)
class RecordSet:
    """Everything read from the files: records and summary rows, with their origin.

    ``record_lines`` and ``summary_lines`` give ``FILE:LINE`` of each entry;
    ``failed`` counts the records of failed queries, which are left out.
    """

    records: tuple[Record, ...]
    record_lines: tuple[str, ...]
    summaries: tuple[SummaryRow, ...]
    summary_lines: tuple[str, ...]
    files: tuple[str, ...]
    failed: int = 0

    @property
    def model(self) -> str | None:
        """The model the records name (they all name the same one), if any."""
        return next((r.model for r in self.records if r.model is not None), None)

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks in order of first appearance."""
        names = [r.task for r in self.records] + [s.task for s in self.summaries]
        return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- messages

_MESSAGES = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "must be finite",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "string_too_short": "must be a non-empty name",
}


def _describe(error: Any) -> tuple[str, str]:
    """(field, problem) of one pydantic error, the problem ending in the bad value."""
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    if kind == "missing":
        return loc[0] if loc else "record", "missing"
    field = loc[0] if loc else "record"
    context = error.get("ctx") or {}
    if kind == "greater_than_equal":
        text = f"must be >= {context.get('ge')}"
    elif kind == "greater_than":
        text = f"must be > {context.get('gt')}"
    elif kind in _MESSAGES:
        text = _MESSAGES[kind]
    elif kind == "value_error":
        text = str(context.get("error", error["msg"]))
    else:
        text = str(error["msg"]).lower()
    shown = repr(error.get("input"))
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return field, f"{text}, got {shown}"


def _problems(path: str, line: int, exc: ValidationError) -> list[Problem]:
    return [Problem(path, line, *_describe(error)) for error in exc.errors()]


# --------------------------------------------------------------------------- readers


def _read_jsonl(path: Path, label: str, problems: list[Problem]) -> list[tuple[int, Record]]:
    out: list[tuple[int, Record]] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(label, number, "line", "not UTF-8 text"))
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(label, number, "json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
            continue
        if not isinstance(data, dict):
            problems.append(Problem(label, number, "record", "expected a JSON object"))
            continue
        try:
            out.append((number, Record.model_validate(data)))
        except ValidationError as exc:
            problems.extend(_problems(label, number, exc))
    return out


_SUMMARY_COLUMNS = ("task", "budget", "n", "correct", "mean_latency_s")


def _read_csv(path: Path, label: str, problems: list[Problem]) -> list[tuple[int, SummaryRow]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(Problem(label, None, "file", "not UTF-8 text"))
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        problems.append(Problem(label, 1, "header", "empty file (expected a header row)"))
        return []
    header = [name.strip() for name in header]
    missing = [name for name in _SUMMARY_COLUMNS if name not in header]
    if missing:
        problems.append(
            Problem(label, 1, missing[0], f"missing column (need {', '.join(_SUMMARY_COLUMNS)})")
        )
        return []
    out: list[tuple[int, SummaryRow]] = []
    for cells in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(
                Problem(label, number, "row", f"expected {len(header)} cells, got {len(cells)}")
            )
            continue
        # an empty cell is an absent value: "missing" if required, None if optional
        data = {
            name: cell.strip() for name, cell in zip(header, cells, strict=True) if cell.strip()
        }
        try:
            row = SummaryRow.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problems(label, number, exc))
            continue
        if row.correct > row.n:
            problems.append(
                Problem(label, number, "correct", f"must be <= n ({row.n}), got {row.correct}")
            )
            continue
        out.append((number, row))
    return out


def _check_consistency(
    records: Sequence[tuple[str, Record]],
    summaries: Sequence[tuple[str, SummaryRow]],
    problems: list[Problem],
) -> None:
    """One model throughout; each task in one form (records or summary rows)."""
    model_seen: tuple[str, str] | None = None
    for where, record in records:
        if record.model is None:
            continue
        if model_seen is None:
            model_seen = (record.model, where)
        elif record.model != model_seen[0]:
            path, _, line = where.rpartition(":")
            problems.append(
                Problem(
                    path,
                    int(line),
                    "model",
                    f"records mix models: {record.model!r} here, {model_seen[0]!r} at "
                    f"{model_seen[1]} (fit one model at a time)",
                )
            )
    first_record: dict[str, str] = {}
    for where, record in records:
        first_record.setdefault(record.task, where)
    for where, row in summaries:
        if row.task in first_record:
            path, _, line = where.rpartition(":")
            problems.append(
                Problem(
                    path,
                    int(line),
                    "task",
                    f"task {row.task!r} also has records (at {first_record[row.task]}): "
                    "give each task as records or as a summary, not both",
                )
            )
            first_record[row.task] = where  # report each task once


def read_records(paths: Iterable[str | Path]) -> RecordSet:
    """Read and validate measurement files (``.jsonl`` records, ``.csv`` summaries).

    Raises
    ------
    RecordError
        Listing every malformed line as ``FILE:LINE: field: problem``, and files that
        are missing, unreadable or of an unknown kind.
    """
    problems: list[Problem] = []
    records: list[tuple[str, Record]] = []
    summaries: list[tuple[str, SummaryRow]] = []
    files: list[str] = []
    for item in paths:
        path = Path(item)
        label = str(item)
        files.append(label)
        suffix = path.suffix.lower()
        if suffix not in RECORD_SUFFIXES + SUMMARY_SUFFIXES:
            problems.append(
                Problem(label, None, "file", "unknown kind of file (use .jsonl records or .csv)")
            )
            continue
        try:
            if suffix in RECORD_SUFFIXES:
                records += [(f"{label}:{n}", r) for n, r in _read_jsonl(path, label, problems)]
            else:
                summaries += [(f"{label}:{n}", r) for n, r in _read_csv(path, label, problems)]
        except FileNotFoundError:
            problems.append(Problem(label, None, "file", "no such file"))
        except OSError as exc:
            problems.append(Problem(label, None, "file", f"cannot read: {exc.strerror or exc}"))
    if not files:
        problems.append(Problem("records", None, "files", "no files given"))
    _check_consistency(records, summaries, problems)
    failed = sum(1 for _, r in records if r.error is not None)
    records = [(w, r) for w, r in records if r.error is None]
    if not problems and not records and not summaries:
        what = f"all {failed} records are failed queries" if failed else "no records in the files"
        problems.append(Problem(", ".join(files), None, "records", what))
    if problems:
        raise RecordError(problems)
    return RecordSet(
        records=tuple(r for _, r in records),
        record_lines=tuple(w for w, _ in records),
        summaries=tuple(s for _, s in summaries),
        summary_lines=tuple(w for w, _ in summaries),
        files=tuple(files),
        failed=failed,
    )
