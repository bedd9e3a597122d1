"""thinkq simulate, reproduce and sweep end to end (Typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thinkq import cli

SIMULATE_KEYS = {
    "queries",
    "mean_waiting_time",
    "mean_system_time",
    "p95_system_time",
    "p99_system_time",
    "utilization",
    "accuracy",
    "analytic_mean_system_time",
    "tasks",
}


def run(*args: object):
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def one_line_error(result, option: str) -> None:
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert option in lines[0]
    assert "Traceback" not in result.output


def test_simulate_json_at_the_optimum():
    result = run("simulate", "--queries", 200_000, "--seed", 3, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= SIMULATE_KEYS
    assert data["queries"] == 200_000
    assert data["analytic_mean_system_time"] == pytest.approx(2.1777, abs=1e-3)
    assert abs(data["mean_system_time"] / data["analytic_mean_system_time"] - 1) < 0.03
    assert [t["budget"] for t in data["tasks"]] == [0, 341, 0, 0, 346, 30]
    assert {"name", "mean_system_time", "p95_system_time", "accuracy"} <= set(data["tasks"][0])


def test_simulate_is_reproducible_by_seed():
    a = run("simulate", "--queries", 5000, "--seed", 9, "--json").stdout
    b = run("simulate", "--queries", 5000, "--seed", 9, "--json").stdout
    assert a == b


def test_simulate_uniform_and_file_budgets(tmp_path: Path):
    uniform = json.loads(
        run("simulate", "--budgets", "uniform:100", "--queries", 1000, "--json").stdout
    )
    assert [t["budget"] for t in uniform["tasks"]] == [100.0] * 6
    solved = run("solve", "--json").stdout
    path = tmp_path / "budgets.json"
    path.write_text(solved)
    from_file = json.loads(run("simulate", "--budgets", path, "--queries", 1000, "--json").stdout)
    assert [t["budget"] for t in from_file["tasks"]] == [0, 341, 0, 0, 346, 30]
    mapping = tmp_path / "mapping.json"
    names = [t["name"] for t in from_file["tasks"]]
    mapping.write_text(json.dumps(dict.fromkeys(names, 7)))
    data = json.loads(run("simulate", "--budgets", mapping, "--queries", 1000, "--json").stdout)
    assert [t["budget"] for t in data["tasks"]] == [7.0] * 6


def test_simulate_table_names_every_task():
    result = run("simulate", "--queries", 2000, "--seed", 1)
    assert result.exit_code == 0
    for name in ("AIME", "GSM8K", "BBH", "mean system time", "P-K"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--budgets", "uniform:x"), "--budgets"),
        (("--budgets", "uniform:-5"), "--budgets"),
        (("--budgets", "uniform:32768"), "--budgets"),  # unstable: every type at l_max
        (("--budgets", "missing.json"), "--budgets"),
        (("--queries", "5"), "--queries"),
    ],
)
def test_simulate_errors_are_one_line(args, option):
    one_line_error(run("simulate", *args), option)


def test_simulate_budget_file_errors(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"AIME": 1}')
    one_line_error(run("simulate", "--budgets", bad), "no budget for task 'GSM8K'")
    bad.write_text("{not json")
    one_line_error(run("simulate", "--budgets", bad), "--budgets")


def test_sweep_json_over_alpha_is_monotone():
    result = run("sweep", "--over", "alpha", "--from", 5, "--to", 200, "--points", 6, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    points = data["points"]
    assert points[0]["alpha"] == 5
    accuracy = [p["accuracy"] for p in points]
    assert accuracy == sorted(accuracy)
    assert all(p["p95_system_time"] > 0 for p in points)


def test_sweep_over_rate_reports_saturation_and_plots(tmp_path: Path):
    plot = tmp_path / "sweep.svg"
    result = run(
        "sweep",
        "--over",
        "rate",
        "--from",
        0.1,
        "--to",
        12,
        "--points",
        5,
        "--queries",
        0,
        "--plot",
        plot,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["points"][-1]["stable"] is False
    assert data["points"][-1]["tasks"] is None
    assert [t["name"] for t in data["points"][0]["tasks"]][:2] == ["AIME", "GSM8K"]
    assert data["points"][0]["p95_system_time"] is None
    assert (data["format"], data["seed"]) == ("thinkq-sweep/1", 0)
    assert b"<svg" in plot.read_bytes()[:2000]
    assert f"wrote {plot}" in result.stderr.splitlines()
    table = run("sweep", "--over", "rate", "--from", 0.1, "--to", 12, "--points", 3, "--queries", 0)
    rows = [line for line in table.stdout.splitlines() if line.lstrip("│ ").startswith("12 ")]
    assert len(rows) == 1
    assert "unstable" in rows[0]
    assert "zero budgets are unstable from rate 8.171/s" in table.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--over", "rate", "--from", 2, "--to", 1), "--from/--to"),
        (("--over", "beta", "--from", 1, "--to", 2), "--over"),
        (("--over", "rate", "--from", 1, "--to", 2, "--plot", "x.pdf"), "--plot"),
        (("--over", "slots", "--from", 1, "--to", 8), "--over"),
        (("--over", "slots", "--from", 1, "--to", 8, "--tau0", 0.01), "--tau0/--tau1"),
        (("--over", "slots", "--from", 1, "--to", 8, "--tau0", -1, "--tau1", 0), "--tau0"),
        (("--over", "slots", "--from", 1.5, "--to", 8, "--tau0", 1, "--tau1", 0), "--from/--to"),
        (("--over", "rate", "--from", 1, "--to", 2, "--rate", 50), "--rate"),
        (("--over", "slots", "--from", 1, "--to", 4, "--tau0", 1e308, "--tau1", 1e308), "--tau1"),
    ],
)
def test_sweep_errors_are_one_line(args, option):
    one_line_error(run("sweep", *args), option)


def test_sweep_over_slots_shows_the_mean_batch_and_plots(tmp_path: Path):
    plot = tmp_path / "slots.png"
    args = ("sweep", "--over", "slots", "--from", 1, "--to", 16, "--rate", 10.0)
    law = ("--tau0", 0.02, "--tau1", 0.002)
    data = json.loads(run(*args, *law, "--queries", 0, "--json").stdout)
    points = data["points"]
    assert [p["slots"] for p in points] == [1, 2, 4, 8, 16]
    # rate 10/s is beyond one slot (rate * E[S(0)] = 1.22): batching makes it servable
    assert [p["stable"] for p in points] == [False, True, True, True, True]
    assert all(p["mean_batch"] > 1.0 for p in points[1:])
    table = run(*args, *law, "--queries", 2000, "--plot", plot)
    assert table.exit_code == 0, table.output
    assert "mean batch" in table.stdout
    assert plot.stat().st_size > 10_000


def test_reproduce_writes_the_files(tmp_path: Path):
    out = tmp_path / "out"
    result = run("reproduce", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # each written file is confirmed on stderr
    lines = result.stderr.splitlines()
    assert lines
    assert all(line.startswith("wrote ") for line in lines)
    written = {Path(line.removeprefix("wrote ")).name for line in lines}
    assert {
        "table1.md",
        "table1.csv",
        "report.md",
        "fig3_policies.png",
        "fig4_sensitivity.svg",
    } <= written
    assert all((out / name).exists() for name in written)
