"""Readers of measurement files: every malformed line becomes a :class:`Problem`.

:func:`read_jsonl` reads ``.jsonl`` records, :func:`read_csv` ``.csv`` summaries;
both append the problems they find to a list instead of raising, so that
:func:`thinkq.records.read_records` reports every one at once.
:func:`check_consistency` checks the files against each other. A problem names the
field and ends in the (shortened) bad value, in plain words rather than pydantic's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from thinkq.records.lines import Problem, PromptRecord, Record, ServerRecord, SummaryRow

__all__ = ["check_consistency", "read_csv", "read_jsonl"]

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
    elif kind == "less_than_equal":
        text = f"must be <= {context.get('le')}"
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


def read_jsonl(
    path: Path,
    label: str,
    problems: list[Problem],
    server: list[tuple[int, ServerRecord]] | None = None,
    prompts: list[tuple[int, PromptRecord]] | None = None,
) -> list[tuple[int, Record]]:
    """The records of a ``.jsonl`` file with their line numbers; problems to ``problems``.

    Lines of the server phase (``"phase": "server"``) go to ``server`` and those of its
    prompt probe (``"phase": "prompt"``) to ``prompts`` (they are no accuracy
    measurements); without those lists, they are problems.
    """
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
        except RecursionError:
            problems.append(Problem(label, number, "json", "nested too deeply to read"))
            continue
        except ValueError:  # an integer of more digits than Python converts
            problems.append(Problem(label, number, "json", "a number too long to read"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(label, number, "record", "expected a JSON object"))
            continue
        if data.get("phase") == "prompt":
            _prompt_line(data, (label, number), problems, prompts)
            continue
        if "phase" in data:
            _server_line(data, (label, number), problems, server)
            continue
        try:
            out.append((number, Record.model_validate(data)))
        except ValidationError as exc:
            problems.extend(_problems(label, number, exc))
    return out


_Line = TypeVar("_Line", bound=BaseModel)


def _validated(
    model: type[_Line],
    data: dict[str, Any],
    where: tuple[str, int],
    problems: list[Problem],
    kind: str,
    into: list[Any] | None,
) -> _Line | None:
    """``data`` as a ``model`` record, or None with its problems (also when this reader
    does not take records of this ``kind``: ``into`` is None)."""
    label, number = where
    if into is None:
        problems.append(Problem(label, number, "phase", f"{kind} record is not read here"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(label, number, exc))
        return None


def _server_line(
    data: dict[str, Any],
    where: tuple[str, int],
    problems: list[Problem],
    server: list[tuple[int, ServerRecord]] | None,
) -> None:
    """Read one line of the server phase into ``server``, or its problems."""
    label, number = where
    if data["phase"] != "server":
        shown = repr(data["phase"])[:40]
        problems.append(
            Problem(label, number, "phase", f"expected 'server' or 'prompt', got {shown}")
        )
        return
    record = _validated(ServerRecord, data, where, problems, "a server-phase", server)
    if record is None or server is None:
        return
    if record.error is None and record.step_s is None:
        problems.append(
            Problem(
                label, number, "think_s",
                "missing (neither the server's predicted_ms nor the client's think_s "
                "times this record's thinking)",
            )
        )  # fmt: skip
        return
    server.append((number, record))


def _prompt_line(
    data: dict[str, Any],
    where: tuple[str, int],
    problems: list[Problem],
    prompts: list[tuple[int, PromptRecord]] | None,
) -> None:
    """Read one line of the prompt probe into ``prompts``, or its problems."""
    label, number = where
    record = _validated(PromptRecord, data, where, problems, "a prompt-probe", prompts)
    if record is None or prompts is None:
        return
    if record.error is None:
        for field in ("new_ms", "held_ms"):
            if getattr(record, field) is None:
                why = "missing (a probe that did not fail times its prompt, new and held)"
                problems.append(Problem(label, number, field, why))
                return
    prompts.append((number, record))


_SUMMARY_COLUMNS = ("task", "budget", "n", "correct", "mean_latency_s")


def read_csv(path: Path, label: str, problems: list[Problem]) -> list[tuple[int, SummaryRow]]:
    """The rows of a ``.csv`` summary with their line numbers; problems to ``problems``."""
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


def check_consistency(
    records: Sequence[tuple[str, Record]],
    summaries: Sequence[tuple[str, SummaryRow]],
    problems: list[Problem],
    server: Sequence[tuple[str, ServerRecord | PromptRecord]] = (),
) -> None:
    """One model throughout (server and probe records too); each task in one form
    (records or summary rows)."""
    model_seen: tuple[str, str] | None = None
    every: list[tuple[str, Record | ServerRecord | PromptRecord]] = [*records, *server]
    for where, record in every:
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
