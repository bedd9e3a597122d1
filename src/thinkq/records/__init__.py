"""Measurement records: what a budget-forced run of an LLM server produced (section IV-A).

Two forms are read, by file suffix:

* ``.jsonl`` (or ``.ndjson``): one JSON object per answered query, a :class:`Record`
  with ``task``, ``budget`` (tokens), ``correct`` (true/false) and ``latency_s``
  (seconds), optionally ``thinking_tokens``, ``answer_tokens``, ``item_id``, ``run``
  and ``model``; any further keys (prompts, answers, timestamps) are kept as they are.
  A record with an ``error`` (a query that failed, as ``thinkq profile`` writes it)
  is counted in :attr:`RecordSet.failed` and left out of the measurements. A line
  with ``"phase": "server"`` is a :class:`ServerRecord` of ``thinkq profile --slots``
  (:attr:`RecordSet.server`), which fits the server's step time, never the curves;
  one with ``"phase": "prompt"`` a :class:`PromptRecord` of its prompt probe
  (:attr:`RecordSet.prompts`), which gives the ``[server]`` table's ``prompt``.
* ``.csv``: a summary, one :class:`SummaryRow` per task and budget with ``task``,
  ``budget``, ``n`` (queries), ``correct`` (how many were right), ``mean_latency_s``
  and optionally ``latency_variance_s2`` (seconds squared); further columns are kept.

Types are strict where the format has types (JSON: ``correct`` must be ``true`` or
``false``, numbers must not be strings, budgets must be integers). Every malformed
line is collected and reported as ``FILE:LINE: field: problem`` in one
:class:`RecordError`, so a user fixes a file in one pass. The line types live in
:mod:`thinkq.records.lines`, the readers of each kind of file in
:mod:`thinkq.records.readers`, the set of them in :mod:`thinkq.records.sets`, and
:func:`check_records` (:mod:`thinkq.records.checks`) checks records against their budgets
and each other before a fit; this module is their public surface.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from thinkq.errors import RecordError
from thinkq.records.checks import Checked, check_records
from thinkq.records.lines import Problem, PromptRecord, Record, ServerRecord, SummaryRow
from thinkq.records.readers import check_consistency, read_csv, read_jsonl
from thinkq.records.sets import RecordSet

__all__ = [
    "RECORD_SUFFIXES",
    "SUMMARY_SUFFIXES",
    "Checked",
    "Problem",
    "PromptRecord",
    "Record",
    "RecordSet",
    "ServerRecord",
    "SummaryRow",
    "check_records",
    "read_records",
]

RECORD_SUFFIXES = (".jsonl", ".ndjson")
SUMMARY_SUFFIXES = (".csv",)


def _jsonl(
    path: Path, label: str, problems: list[Problem]
) -> tuple[
    list[tuple[str, Record]], list[tuple[str, ServerRecord]], list[tuple[str, PromptRecord]]
]:
    """A ``.jsonl`` file's records, server records and probe records, by ``FILE:LINE``."""
    server: list[tuple[int, ServerRecord]] = []
    prompts: list[tuple[int, PromptRecord]] = []
    records = read_jsonl(path, label, problems, server, prompts)
    return (
        [(f"{label}:{n}", r) for n, r in records],
        [(f"{label}:{n}", r) for n, r in server],
        [(f"{label}:{n}", r) for n, r in prompts],
    )


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
    server: list[tuple[str, ServerRecord]] = []
    prompts: list[tuple[str, PromptRecord]] = []
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
                more, measured, probed = _jsonl(path, label, problems)
                records, server, prompts = records + more, server + measured, prompts + probed
            else:
                summaries += [(f"{label}:{n}", r) for n, r in read_csv(path, label, problems)]
        except FileNotFoundError:
            problems.append(Problem(label, None, "file", "no such file"))
        except OSError as exc:
            problems.append(Problem(label, None, "file", f"cannot read: {exc.strerror or exc}"))
    if not files:
        problems.append(Problem("records", None, "files", "no files given"))
    check_consistency(records, summaries, problems, [*server, *prompts])
    errors = [r.error for _, r in records] + [r.error for _, r in server]
    failed = sum(1 for e in errors + [r.error for _, r in prompts] if e is not None)
    records = [(w, r) for w, r in records if r.error is None]
    server = [(w, r) for w, r in server if r.error is None]
    prompts = [(w, r) for w, r in prompts if r.error is None]
    if not problems and not records and not summaries and not server and not prompts:
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
        server=tuple(r for _, r in server),
        server_lines=tuple(w for w, _ in server),
        prompts=tuple(r for _, r in prompts),
        prompt_lines=tuple(w for w, _ in prompts),
    )
