"""Checks of records against their budgets and each other, before they are fitted.

:func:`check_records` says what a :class:`~thinkq.records.RecordSet` holds beyond each
line's own validity:

* a record whose ``thinking_tokens`` differ from its ``budget`` (the forcing missed it,
  or the record was edited) measures another budget than it claims: an error, or with
  ``drop_off_budget`` left out and counted. A record of ``"mode": "cap"`` may think
  less than its budget (a cap is an upper bound), never more;
* records with an ``item_id`` are keyed by (task, item, budget, run). A line identical
  to an earlier one (a file given twice, a line copied) is counted once; a record with
  the key of an earlier one but other values is kept and reported (are two runs mixed?).

The failed queries that :func:`~thinkq.records.read_records` left out are reported too.
"""

from __future__ import annotations

import dataclasses
import json
from typing import NamedTuple

from thinkq.errors import RecordError
from thinkq.records.lines import Problem, Record
from thinkq.records.sets import RecordSet

__all__ = ["Checked", "check_records"]


class Checked(NamedTuple):
    """The records to fit, and what was left out or looks wrong (``warning`` lines)."""

    records: RecordSet
    warnings: tuple[str, ...]


def _off_budget(record: Record) -> bool:
    thought = record.thinking_tokens
    if thought is None:
        return False
    if (record.model_extra or {}).get("mode") == "cap":
        return thought > record.budget
    return thought != record.budget


def _problem(where: str, record: Record) -> Problem:
    path, _, line = where.rpartition(":")
    limit = "over" if (record.model_extra or {}).get("mode") == "cap" else "not"
    return Problem(
        path,
        int(line),
        "thinking_tokens",
        f"{record.thinking_tokens} thinking tokens, {limit} the budget {record.budget} "
        "(the forcing missed it, or the record was edited); --drop-off-budget leaves "
        "such records out",
    )


def _duplicates(
    rows: list[tuple[str, Record]],
) -> tuple[list[tuple[str, Record]], list[str]]:
    """``rows`` without repeated identical lines; warnings for repeats and conflicts."""
    seen: dict[tuple[str, str, int, str], tuple[int, str, str]] = {}
    kept: list[tuple[str, Record]] = []
    same: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for index, (where, record) in enumerate(rows):
        if record.item_id is None:
            kept.append((where, record))
            continue
        key = (record.task, repr(record.item_id), record.budget, repr(record.run))
        text = json.dumps(record.model_dump(), sort_keys=True, default=str)
        first = seen.setdefault(key, (index, where, text))
        if first[0] == index:
            kept.append((where, record))
        elif first[2] == text:
            same.append((where, first[1]))
        else:
            if record.run is not None:  # without run numbers, repeats are expected
                other.append((where, first[1]))
            kept.append((where, record))
    notes = []
    if same:
        notes.append(
            f"{len(same)} records repeat an earlier line exactly and are counted once "
            f"({same[0][0]} repeats {same[0][1]})"
        )
    if other:
        notes.append(
            f"{len(other)} records have the task, item, budget and run of an earlier record "
            f"but other values, and are kept ({other[0][0]} and {other[0][1]}): are two runs "
            "mixed in these files?"
        )
    return kept, notes


def check_records(records: RecordSet, *, drop_off_budget: bool = False) -> Checked:
    """The records fit to use, with warnings about what was left out or looks wrong.

    Raises
    ------
    RecordError
        Records whose thinking tokens differ from their budget (unless
        ``drop_off_budget``), one ``FILE:LINE: thinking_tokens: ...`` line each; or no
        records left to fit.
    """
    notes = []
    if records.failed:
        notes.append(
            f"{records.failed} records of failed queries are left out (their 'error' says why)"
        )
    rows = list(zip(records.record_lines, records.records, strict=True))
    off = [(where, r) for where, r in rows if _off_budget(r)]
    if off and not drop_off_budget:
        raise RecordError([_problem(where, r) for where, r in off])
    if off:
        rows = [(where, r) for where, r in rows if not _off_budget(r)]
        notes.append(
            f"{len(off)} records whose thinking tokens differ from their budget are left out "
            f"(the first at {off[0][0]})"
        )
    rows, repeats = _duplicates(rows)
    if not rows and not records.summaries:
        why = "none left to fit"
        if records.server:
            why += (
                " (the files hold only the server phase of thinkq profile --slots; give the "
                "accuracy records, NAME.jsonl, beside NAME.server.jsonl)"
            )
        raise RecordError([Problem(", ".join(records.files), None, "records", why)])
    checked = dataclasses.replace(
        records,
        records=tuple(r for _, r in rows),
        record_lines=tuple(w for w, _ in rows),
    )
    return Checked(checked, tuple(notes + repeats))
