"""Measurement records: strict parsing, every malformed line named, summaries merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from record_cases import BAD_RECORDS, SUMMARY_HEADER, BadRecords, good_lines, good_rows, line
from thinkq.errors import SHOWN_PROBLEMS, RecordError, ThinkqError
from thinkq.records import Problem, Record, read_records


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_records_are_read_with_their_extra_keys(tmp_path: Path):
    extra = line(prompt="2 + 2?", answer="4", started_at="2026-01-01T00:00:00Z")
    path = write(tmp_path / "r.jsonl", *good_lines(), "", extra)
    records = read_records([path])
    assert len(records.records) == len(good_lines()) + 1
    last = records.records[-1]
    assert last.model_extra == {
        "prompt": "2 + 2?",
        "answer": "4",
        "started_at": "2026-01-01T00:00:00Z",
    }
    # the blank line is skipped, and each record knows where it came from
    assert records.record_lines[-1] == f"{path}:{len(good_lines()) + 2}"
    assert records.model == "m"
    assert records.task_names == ("math",)


def test_optional_fields_may_be_absent_or_null(tmp_path: Path):
    minimal = json.dumps({"task": "t", "budget": 0, "correct": False, "latency_s": 1})
    nulls = line(item_id=None, run=None, model=None, thinking_tokens=None)
    records = read_records([write(tmp_path / "r.jsonl", minimal, nulls)]).records
    assert records[0].item_id is None
    assert records[0].model is None
    assert records[0].latency_s == 1.0  # a JSON integer is a number of seconds
    assert records[1].thinking_tokens is None


def test_item_and_run_may_be_strings_or_integers():
    a = Record.model_validate(json.loads(line(item_id=17, run="run-2")))
    b = Record.model_validate(json.loads(line(item_id="q17", run=3)))
    assert (a.item_id, a.run, b.item_id, b.run) == (17, "run-2", "q17", 3)


@pytest.fixture(params=BAD_RECORDS, ids=[case.id for case in BAD_RECORDS])
def bad_records(request: pytest.FixtureRequest) -> BadRecords:
    case: BadRecords = request.param
    return case


def test_every_malformed_case_names_file_line_and_field(tmp_path: Path, bad_records: BadRecords):
    case = bad_records
    paths = case.write(tmp_path) or [tmp_path / case.file]
    with pytest.raises(RecordError) as info:
        read_records(paths)
    problems = info.value.problems
    expected = str(tmp_path / case.file)
    match = [p for p in problems if p.path == expected and p.line == case.line]
    assert match, [str(p) for p in problems]
    assert match[0].field == case.field
    assert case.fragment in match[0].message
    where = expected if case.line is None else f"{expected}:{case.line}"
    assert f"{where}: {case.field}: " in str(info.value)


def test_record_error_is_a_thinkq_and_value_error():
    assert issubclass(RecordError, ThinkqError)
    assert issubclass(RecordError, ValueError)


def test_every_bad_line_is_reported_not_only_the_first(tmp_path: Path):
    lines = good_lines()
    lines[1] = line(budget=-1)
    lines[4] = line(correct="yes", latency_s="slow")
    path = write(tmp_path / "r.jsonl", *lines)
    with pytest.raises(RecordError) as info:
        read_records([path])
    found = {(p.line, p.field) for p in info.value.problems}
    assert found == {(2, "budget"), (5, "correct"), (5, "latency_s")}
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]


def test_many_problems_are_listed_up_to_a_limit(tmp_path: Path):
    lines = [line(budget=-1)] * (SHOWN_PROBLEMS + 7)
    with pytest.raises(RecordError) as info:
        read_records([write(tmp_path / "r.jsonl", *lines)])
    assert len(info.value.problems) == SHOWN_PROBLEMS + 7
    text = str(info.value).splitlines()
    assert len(text) == SHOWN_PROBLEMS + 1
    assert text[-1] == "... and 7 more malformed lines"


def test_problem_format():
    assert str(Problem("a.jsonl", 3, "budget", "must be >= 0, got -5")) == (
        "a.jsonl:3: budget: must be >= 0, got -5"
    )
    assert str(Problem("a.jsonl", None, "file", "no such file")) == "a.jsonl: file: no such file"


def test_summaries_parse_text_cells_and_keep_extra_columns(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text(
        SUMMARY_HEADER + ",note\n" + "\n".join(r + ",hello" for r in good_rows()) + "\n\n",
        encoding="utf-8",
    )
    summaries = read_records([path]).summaries
    assert [s.budget for s in summaries] == [0, 128, 512]
    assert summaries[1].n == 100
    assert summaries[1].correct == 50
    assert summaries[1].mean_latency_s == 2.0
    assert summaries[1].latency_variance_s2 == 0.04
    assert summaries[0].model_extra == {"note": "hello"}


def test_summary_variance_is_optional(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text("task,budget,n,correct,mean_latency_s\ncode,0,10,3,0.5\n", encoding="utf-8")
    (row,) = read_records([path]).summaries
    assert row.latency_variance_s2 is None


def test_records_and_summaries_combine_across_files(tmp_path: Path):
    records = write(tmp_path / "r.jsonl", *good_lines())
    summary = tmp_path / "s.csv"
    summary.write_text(SUMMARY_HEADER + "\n" + "\n".join(good_rows()) + "\n", encoding="utf-8")
    both = read_records([records, summary])
    assert both.task_names == ("math", "code")
    assert both.files == (str(records), str(summary))


def probe_line(**changes: object) -> str:
    """One line of the server phase's prompt probe."""
    base = {"phase": "prompt", "task": "math", "item_id": "q1", "model": "m", "tag": "[t-0]",
            "new_ms": 350.5, "new_n": 125, "held_ms": 9.0, "held_n": 1, "error": None}  # fmt: skip
    return json.dumps(base | changes)


def test_prompt_probe_lines_are_read_beside_the_records(tmp_path: Path):
    failed = probe_line(item_id="q2", new_ms=None, held_ms=None, error="server: HTTP 500")
    path = write(tmp_path / "r.jsonl", *good_lines(), probe_line(), failed)
    records = read_records([path])
    assert len(records.records) == len(good_lines())  # the probe is no accuracy record
    (probe,) = records.prompts
    assert (probe.new_ms, probe.new_n, probe.held_ms, probe.held_n) == (350.5, 125, 9.0, 1)
    assert records.prompt_lines == (f"{path}:{len(good_lines()) + 1}",)
    assert records.failed == 1
    assert records.model == "m"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"new_ms": None}, "new_ms", "missing (a probe that did not fail"),
        ({"held_ms": -1}, "held_ms", "must be >= 0"),
        ({"new_n": 1.5}, "new_n", "expected an integer"),
        ({"task": ""}, "task", "must be a non-empty name"),
        ({"model": "other"}, "model", "records mix models"),
    ],
)
def test_a_malformed_probe_line_is_one_problem(
    tmp_path: Path, changes: dict[str, object], field: str, fragment: str
):
    path = write(tmp_path / "r.jsonl", *good_lines(), probe_line(**changes))
    with pytest.raises(RecordError) as info:
        read_records([path])
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (len(good_lines()) + 1, field)
    assert fragment in problem.message
