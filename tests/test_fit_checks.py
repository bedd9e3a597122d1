"""``thinkq fit`` says what it sees: adversarial records give errors and warnings, never a
traceback and never a silent change of the fit (thinkq.records.checks, fit.data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from record_cases import good_lines, line
from thinkq import cli
from thinkq.errors import RecordError
from thinkq.fit import fit_records
from thinkq.records import check_records, read_records


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fit(*args: object) -> Result:
    argv = ["fit", *map(str, args), "--bootstrap", "0", "--json"]
    return CliRunner().invoke(cli.app, argv, prog_name="thinkq")


def report(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def warnings(result: Result) -> list[str]:
    return [w for w in result.stderr.splitlines() if w.startswith("warning: ")]


def test_thinking_tokens_off_the_budget_are_an_error_naming_the_line(tmp_path: Path) -> None:
    lines = good_lines()
    lines.insert(4, line(budget=64, thinking_tokens=50, item_id="late"))
    records = write(tmp_path / "records.jsonl", lines)
    out = tmp_path / "p.toml"
    result = fit(records, "-o", out)
    assert result.exit_code == 2, result.output
    [error] = result.stderr.splitlines()
    assert error.startswith(f"error: {records}:5: thinking_tokens: 50 thinking tokens, not ")
    assert "--drop-off-budget" in error
    assert not out.exists()


def test_drop_off_budget_leaves_them_out_with_a_count(tmp_path: Path) -> None:
    clean = write(tmp_path / "clean.jsonl", good_lines())
    lines = good_lines()
    lines += [line(budget=256, thinking_tokens=t, item_id=f"x{t}") for t in (0, 300)]
    mixed = write(tmp_path / "mixed.jsonl", lines)
    result = fit(mixed, "--drop-off-budget")
    assert warnings(result)[0] == (
        f"warning: 2 records whose thinking tokens differ from their budget are left out "
        f"(the first at {mixed}:13)"
    )
    assert report(result)["profile"] == report(fit(clean))["profile"]


def test_cap_records_may_think_less_than_the_budget_never_more(tmp_path: Path) -> None:
    under = [line(budget=b, thinking_tokens=b // 2, mode="cap") for b in (0, 64, 256)]
    ok = write(tmp_path / "under.jsonl", good_lines() + under)
    assert fit(ok).exit_code == 0
    over = write(tmp_path / "over.jsonl", [*good_lines(), line(thinking_tokens=65, mode="cap")])
    result = fit(over)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {over}:13: thinking_tokens: 65 thinking tokens, over the budget 64"
    )


def test_identical_lines_are_counted_once_and_reported(tmp_path: Path) -> None:
    clean = write(tmp_path / "clean.jsonl", good_lines())
    doubled = write(tmp_path / "doubled.jsonl", good_lines() + good_lines()[:3])
    result = fit(doubled)
    assert warnings(result)[0] == (
        f"warning: 3 records repeat an earlier line exactly and are counted once "
        f"({doubled}:13 repeats {doubled}:1)"
    )
    fitted = report(result)
    assert fitted["warnings"][0] == warnings(result)[0].removeprefix("warning: ")
    assert fitted["profile"] == report(fit(clean))["profile"]
    twice = report(fit(clean, clean))  # the same file given twice
    assert sum(t["queries"] for t in twice["tasks"]) == 12


def test_conflicting_duplicates_are_kept_and_reported(tmp_path: Path) -> None:
    lines = good_lines()
    conflict = json.loads(lines[5]) | {"correct": not json.loads(lines[5])["correct"]}
    records = write(tmp_path / "records.jsonl", [*lines, json.dumps(conflict)])
    result = fit(records)
    assert report(result)["tasks"][0]["queries"] == 13
    [warning] = [w for w in warnings(result) if "earlier record" in w]
    assert f"({records}:13 and {records}:6)" in warning
    assert "are two runs mixed" in warning


def test_one_record_at_a_huge_budget_does_not_set_l_max(tmp_path: Path) -> None:
    stray = line(budget=10**12, item_id="stray")
    records = write(tmp_path / "records.jsonl", [*good_lines(), stray])
    result = fit(records)
    fitted = report(result)
    assert fitted["profile"]["max_tokens"] == 256
    assert any("the largest budget, 1000000000000, has 1 query" in w for w in warnings(result))
    chosen = fit(records, "--max-tokens", 512)
    assert report(chosen)["profile"]["max_tokens"] == 512
    assert not any("largest budget, 1000000000000" in w for w in warnings(chosen))


def test_even_budgets_set_l_max_as_before(tmp_path: Path) -> None:
    records = write(tmp_path / "records.jsonl", good_lines())
    result = fit(records)
    assert report(result)["profile"]["max_tokens"] == 256
    assert not any("largest budget" in w for w in warnings(result))


def test_records_without_item_ids_are_never_merged(tmp_path: Path) -> None:
    plain = [line(item_id=..., run=..., budget=b) for b in (0, 0, 64, 64, 256, 256)]
    checked = check_records(read_records([write(tmp_path / "r.jsonl", plain)]))
    assert len(checked.records.records) == 6
    assert checked.warnings == ()


def test_no_records_left_is_an_error(tmp_path: Path) -> None:
    records = write(tmp_path / "r.jsonl", [line(thinking_tokens=1)])
    with pytest.raises(RecordError, match=r"r\.jsonl: records: none left to fit$"):
        check_records(read_records([records]), drop_off_budget=True)


def test_the_library_checks_as_the_command_does(tmp_path: Path) -> None:
    records = write(tmp_path / "r.jsonl", [*good_lines(), line(thinking_tokens=63)])
    with pytest.raises(RecordError, match=r"r\.jsonl:13: thinking_tokens: 63 thinking tokens"):
        fit_records([records], bootstrap=0)
    result = fit_records([records], bootstrap=0, drop_off_budget=True)
    assert result.warnings[0].startswith("1 records whose thinking tokens differ")
    assert sum(t.data.queries for t in result.tasks) == 12
