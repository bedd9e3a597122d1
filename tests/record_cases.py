"""Malformed measurement files, shared by tests/test_records.py (the API) and
tests/test_fit_cli.py (``thinkq fit``): each case names the file, line and field that
the error must point at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def line(**changes: Any) -> str:
    """One valid record line, with ``changes`` (a value of ``...`` drops the key).

    Its ``thinking_tokens`` are its budget unless ``changes`` say otherwise.
    """
    record: dict[str, Any] = {
        "task": "math",
        "budget": 64,
        "correct": True,
        "latency_s": 0.9,
        "thinking_tokens": 64,
        "answer_tokens": 12,
        "item_id": "math-1",
        "run": 0,
        "model": "m",
    }
    record.update(changes)
    budget = record.get("budget")
    if "thinking_tokens" not in changes and type(budget) is int and budget >= 0:
        record["thinking_tokens"] = budget  # forced: exactly the budget
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def good_lines() -> list[str]:
    """Valid records: one task at three budgets."""
    return [
        line(budget=budget, item_id=f"math-{i}", correct=(i + budget) % 3 > 0, latency_s=t)
        for budget, t in ((0, 0.2), (64, 1.0), (256, 3.5))
        for i in range(4)
    ]


SUMMARY_HEADER = "task,budget,n,correct,mean_latency_s,latency_variance_s2"


def good_rows() -> list[str]:
    return ["code,0,100,20,0.3,0.01", "code,128,100,50,2.0,0.04", "code,512,100,70,7.1,0.09"]


@dataclass(frozen=True)
class BadRecords:
    """Files whose problem must be reported as ``file:line: field: ...fragment...``."""

    id: str
    files: dict[str, str | bytes]
    file: str
    line: int | None
    field: str
    fragment: str

    def write(self, directory: Path) -> list[Path]:
        paths = []
        for name, content in self.files.items():
            path = directory / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            paths.append(path)
        return paths

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


def _jsonl(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _bad_line(bad: str, at: int = 3) -> dict[str, str | bytes]:
    """records.jsonl with ``bad`` as line ``at`` among good ones."""
    lines = good_lines()
    lines.insert(at - 1, bad)
    return {"records.jsonl": _jsonl(*lines)}


def _csv(*rows: str, header: str = SUMMARY_HEADER) -> dict[str, str | bytes]:
    return {"summary.csv": "\n".join([header, *rows]) + "\n"}


BAD_RECORDS: tuple[BadRecords, ...] = (
    BadRecords(
        "missing-field", _bad_line(line(correct=...)), "records.jsonl", 3, "correct", "missing"
    ),
    BadRecords("missing-task", _bad_line(line(task=...), 2), "records.jsonl", 2, "task", "missing"),
    BadRecords(
        "string-latency",
        _bad_line(line(latency_s="1.5")),
        "records.jsonl",
        3,
        "latency_s",
        "expected a number",
    ),
    BadRecords(
        "bad-json",
        _bad_line('{"task": "math", "budget": 64,', 5),
        "records.jsonl",
        5,
        "json",
        "invalid JSON",
    ),
    BadRecords("negative-budget", _bad_line(line(budget=-5)), "records.jsonl", 3, "budget", ">= 0"),
    BadRecords(
        "float-budget", _bad_line(line(budget=12.5)), "records.jsonl", 3, "budget", "integer"
    ),
    BadRecords(
        "int-correct", _bad_line(line(correct=1)), "records.jsonl", 3, "correct", "true or false"
    ),
    BadRecords(
        "string-correct",
        _bad_line(line(correct="true"), 1),
        "records.jsonl",
        1,
        "correct",
        "true or false",
    ),
    BadRecords(
        "negative-latency",
        _bad_line(line(latency_s=-0.1)),
        "records.jsonl",
        3,
        "latency_s",
        ">= 0",
    ),
    BadRecords(
        "nan-latency",
        _bad_line(line(latency_s=float("nan"))),
        "records.jsonl",
        3,
        "latency_s",
        "finite",
    ),
    BadRecords(
        "negative-thinking-tokens",
        _bad_line(line(thinking_tokens=-1)),
        "records.jsonl",
        3,
        "thinking_tokens",
        ">= 0",
    ),
    BadRecords("empty-task", _bad_line(line(task=" ")), "records.jsonl", 3, "task", "non-empty"),
    BadRecords("not-an-object", _bad_line("[1, 2]"), "records.jsonl", 3, "record", "JSON object"),
    BadRecords(
        "not-utf8", {"records.jsonl": b'{"task": "\xff"}\n'}, "records.jsonl", 1, "line", "UTF-8"
    ),
    BadRecords(
        "mixed-models",
        _bad_line(line(model="other"), 4),
        "records.jsonl",
        4,
        "model",
        "mix models",
    ),
    BadRecords("no-records", {"records.jsonl": "\n\n"}, "records.jsonl", None, "records", "no"),
    BadRecords("missing-file", {}, "absent.jsonl", None, "file", "no such file"),
    BadRecords("unknown-kind", {"records.txt": "x"}, "records.txt", None, "file", "unknown kind"),
    # summaries
    BadRecords(
        "csv-missing-column",
        _csv("code,0,100,20", header="task,budget,n,correct"),
        "summary.csv",
        1,
        "mean_latency_s",
        "missing column",
    ),
    BadRecords(
        "csv-short-row", _csv(*good_rows(), "code,1024,100"), "summary.csv", 5, "row", "cells"
    ),
    BadRecords(
        "csv-empty-task",
        _csv(",0,100,20,0.3,0.01", *good_rows()),
        "summary.csv",
        2,
        "task",
        "missing",
    ),
    BadRecords(
        "csv-text-budget",
        _csv(*good_rows(), "code,lots,100,20,0.3,0.01"),
        "summary.csv",
        5,
        "budget",
        "integer",
    ),
    BadRecords(
        "csv-float-n",
        _csv(*good_rows(), "code,1024,7.5,2,0.3,0.01"),
        "summary.csv",
        5,
        "n",
        "integer",
    ),
    BadRecords(
        "csv-zero-n", _csv("code,1024,0,0,0.3,0.01", *good_rows()), "summary.csv", 2, "n", ">= 1"
    ),
    BadRecords(
        "csv-correct-above-n",
        _csv(*good_rows()[:2], "code,1024,100,101,9.3,0.1"),
        "summary.csv",
        4,
        "correct",
        "<= n",
    ),
    BadRecords(
        "csv-negative-latency",
        _csv(*good_rows(), "code,1024,100,80,-1,0.1"),
        "summary.csv",
        5,
        "mean_latency_s",
        ">= 0",
    ),
    BadRecords(
        "csv-nan-variance",
        _csv(*good_rows(), "code,1024,100,80,12.0,nan"),
        "summary.csv",
        5,
        "latency_variance_s2",
        "finite",
    ),
    BadRecords(
        "nested-100000-deep",
        _bad_line("[" * 100_000 + "]" * 100_000, 4),
        "records.jsonl",
        4,
        "json",
        "nested too deeply",
    ),
    BadRecords(
        "nested-in-a-record",
        _bad_line('{"task": "math", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", 2),
        "records.jsonl",
        2,
        "json",
        "nested too deeply",
    ),
    BadRecords(
        "number-of-5000-digits",
        _bad_line(line(budget=...)[:-1] + ', "budget": ' + "9" * 5000 + "}", 2),
        "records.jsonl",
        2,
        "json",
        "a number too long",
    ),
    BadRecords(
        "budget-beyond-floats",
        _bad_line(line(budget=10**400, thinking_tokens=10**400), 3),
        "records.jsonl",
        3,
        "budget",
        "<= 9007199254740992",
    ),
    BadRecords(
        "csv-budget-beyond-floats",
        _csv(*good_rows(), f"code,{10**60},100,80,12.0,0.1"),
        "summary.csv",
        5,
        "budget",
        "<= 9007199254740992",
    ),
    BadRecords(
        "csv-task-also-in-records",
        {**_bad_line(line(), 1), **_csv("math,0,100,20,0.3,0.01")},
        "summary.csv",
        2,
        "task",
        "also has records",
    ),
)
