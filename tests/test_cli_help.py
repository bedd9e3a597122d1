"""What every command shares: its help, and the form of its ``--json`` object."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from thinkq import cli
from thinkq.cli._app import PIPELINE
from thinkq.fit.synthetic import sample_records, write_jsonl
from thinkq.profile import paper_profile


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "80")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def test_commands_are_listed_in_pipeline_order() -> None:
    help_text = run("--help").stdout
    listed = [
        name for name in re.findall(r"^│ (\w+) ", help_text, re.MULTILINE) if name in PIPELINE
    ]
    assert listed == list(PIPELINE)
    assert PIPELINE[:3] == ("profile", "fit", "solve")


#: Commands beside the pipeline (listed after it).
OTHERS = ("plan",)


@pytest.mark.parametrize("command", ["", *PIPELINE, *OTHERS])
def test_dash_h_is_help_and_metavars_are_plain(command: str) -> None:
    args = [command] if command else []
    short, long = run(*args, "-h"), run(*args, "--help")
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout
    assert "Usage: thinkq" in short.stdout
    for typer_style in ("<bool>", "<list[", "<path>", "<float>", "<int", "[[", "{"):
        assert typer_style not in short.stdout, typer_style


def test_help_names_option_types_the_click_way() -> None:
    text = run("fit", "-h").stdout
    assert re.search(r"--rate\s+FLOAT", text)
    assert re.search(r"--shares\s+empirical\|uniform", text)
    assert re.search(r"--plots\s+PATH", text)
    assert "Usage: thinkq fit [OPTIONS] RECORDS..." in text
    assert "Usage: thinkq solve [OPTIONS] [PROFILE]" in run("solve", "-h").stdout
    plan = run("plan", "-h").stdout
    assert "Usage: thinkq plan [OPTIONS] [PROFILE]" in plan
    assert re.search(r"--slo\s+OBJECTIVE", plan)
    assert re.search(r"--min-accuracy\s+FLOAT", plan)


def test_shell_completion_is_offered() -> None:
    text = run("--help").stdout
    assert "--install-completion" in text
    assert "--show-completion" in text


def test_every_help_fits_80_columns() -> None:
    for command in ("", *PIPELINE, *OTHERS):
        text = run(*([command] if command else []), "--help").stdout
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 80, command


# --------------------------------------------------------------------------- --json


def assert_tasks_shape(tasks: list[dict[str, Any]], names: list[str]) -> None:
    assert [t["name"] for t in tasks] == names
    for t in tasks:
        if "budget" in t:
            assert isinstance(t["budget"], int)


PAPER = ["AIME", "GSM8K", "GPQA", "CRUXEval", "BBH", "ARC-Challenge"]


def test_every_json_object_carries_its_format_and_task_lists_one_shape(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, sample_records(paper_profile(), [0, 64, 256], items=10, runs=1, seed=1))
    runs = {
        "solve": run("solve", "--json"),
        "simulate": run("simulate", "--queries", "200", "--seed", "3", "--json"),
        "sweep": run("sweep", "--over", "alpha", "--from", "10", "--to", "30", "--points", "2",
                     "--queries", "0", "--json"),
        "fit": run("fit", records, "--bootstrap", "2", "--json"),
    }  # fmt: skip
    for command, result in runs.items():
        assert result.exit_code == 0, (command, result.stderr)
        data = json.loads(result.stdout)
        assert data["format"] == f"thinkq-{command}/1"
        assert next(iter(data)) == "format"
    solve, simulate, sweep, fit = (json.loads(r.stdout) for r in runs.values())
    assert_tasks_shape(solve["tasks"], PAPER)
    assert_tasks_shape(simulate["tasks"], PAPER)
    assert_tasks_shape(fit["tasks"], PAPER)
    for point in sweep["points"]:
        assert_tasks_shape(point["tasks"], PAPER)
    assert (simulate["seed"], sweep["seed"], fit["seed"]) == (3, 0, 0)


def test_a_seed_not_given_is_drawn_and_printed() -> None:
    first = json.loads(run("simulate", "--queries", "100", "--json").stdout)
    assert isinstance(first["seed"], int)
    again = json.loads(
        run("simulate", "--queries", "100", "--seed", first["seed"], "--json").stdout
    )
    assert again["mean_system_time"] == first["mean_system_time"]  # the seed is the one used
    table = run("simulate", "--queries", "100")
    assert re.search(r"\(100 queries, seed \d+\)", table.stdout)


def test_written_files_are_confirmed_on_stderr(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, sample_records(paper_profile(), [0, 64, 256], items=10, runs=1, seed=1))
    out = tmp_path / "fitted.toml"
    result = run("fit", records, "--bootstrap", "2", "-o", out)
    assert result.exit_code == 0, result.stderr
    wrote = [line for line in result.stderr.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {out}", f"wrote {tmp_path / 'fitted.fit.json'}"]


def test_the_loadtest_table_fits_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    from thinkq.cli._loadtest import _render
    from thinkq.serve.loadtest import LoadResult, TaskLoad

    long = TaskLoad("bbh/boolean_expressions", 150, 148, 1, 1, 12.345, 10.1, 20.456, 31.789)
    short = TaskLoad("gsm8k", 150, 150, 0, 0, 1.2, 1.0, 2.0, 3.0)
    overall = TaskLoad("all", 300, 298, 1, 1, 6.7, 5.0, 15.0, 30.0)
    _render(LoadResult(0.4, 0.41, 751.2, (long, short), overall))
    text = capsys.readouterr().out
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "31.789" in text  # no figure cut short
    assert "…" not in text
