"""The command line end to end: ``thinkq solve`` through Typer's runner and as a process."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from conftest import BadProfile, Document, many_tasks_document, paper_document
from thinkq import cli
from thinkq.solve import INTEGER_RULES, METHODS

PAPER_BUDGETS = [0, 341, 0, 0, 346, 30]
# l* from Table I's rounded parameters (the paper prints 0, 340.5, 0, 0, 345.0, 30.1,
# computed from its unrounded fits)
PAPER_CONTINUOUS = [0.0, 340.89, 0.0, 0.0, 346.24, 30.14]
TOP_KEYS = {
    "format",
    "objective",
    "continuous_objective",
    "lower_bound",
    "loss_bound",
    "accuracy",
    "utilization",
    "mean_waiting_time",
    "mean_system_time",
    "p50_system_time",
    "p95_system_time",
    "p99_system_time",
    "percentile_method",
    "percentile_queries",
    "rate",
    "alpha",
    "max_tokens",
    "integer",
    "tasks",
    "solver",
}
TASK_KEYS = {"name", "share", "budget", "continuous_budget", "accuracy", "service_time",
             "p50_system_time", "p95_system_time", "p99_system_time"}  # fmt: skip
SOLVER_KEYS = {
    "method",
    "converged",
    "iterations",
    "evaluations",
    "message",
    "kkt_residual",
    "gap_bound",
    "contraction_bound",
    "step_bound",
    "lipschitz_bound",
    "bounds_region",
    "rho_max",
    "rho_bar",
}

WriteProfile = Callable[..., Path]


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output as on a wide pipe, whatever the environment of the test run says."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def strict_json(text: str) -> Any:
    """Parse one JSON document, refusing NaN and Infinity (not JSON)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON constant {token} in output")

    return json.loads(text, parse_constant=refuse)


def solve_json(*args: str | Path) -> dict[str, Any]:
    result = run("solve", "--json", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = strict_json(result.stdout)
    return data


def assert_one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


# --------------------------------------------------------------------------- the paper


def test_json_on_the_embedded_profile() -> None:
    data = solve_json()
    assert set(data) == TOP_KEYS
    assert set(data["solver"]) == SOLVER_KEYS
    assert all(set(task) == TASK_KEYS for task in data["tasks"])
    assert [task["name"] for task in data["tasks"]] == [
        "AIME",
        "GSM8K",
        "GPQA",
        "CRUXEval",
        "BBH",
        "ARC-Challenge",
    ]
    assert [task["budget"] for task in data["tasks"]] == PAPER_BUDGETS
    continuous = [task["continuous_budget"] for task in data["tasks"]]
    assert continuous == pytest.approx(PAPER_CONTINUOUS, abs=0.5)
    assert (data["rate"], data["alpha"], data["max_tokens"]) == (0.1, 30.0, 32768)
    assert data["solver"]["converged"] is True
    assert data["solver"]["kkt_residual"] <= 1e-7
    assert data["integer"] == "best"
    # J(l*) bounds every integer J from above, the paper's (41) from below
    assert data["lower_bound"] <= data["objective"] <= data["continuous_objective"]
    assert 0 <= data["loss_bound"] < 1e-4


def test_json_of_an_explicit_profile_file_equals_the_default(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    from_file = solve_json(write_profile(paper_doc, "paper.json"))
    default = solve_json()
    assert [t["budget"] for t in from_file["tasks"]] == [t["budget"] for t in default["tasks"]]
    assert from_file["objective"] == pytest.approx(default["objective"], rel=1e-12)


@pytest.mark.parametrize("method", ["fixed-point", "gradient", "newton"])
def test_methods_agree(method: str) -> None:
    auto = solve_json("--method", "auto")
    other = solve_json("--method", method)
    assert other["solver"]["method"] == method
    assert other["continuous_objective"] == pytest.approx(auto["continuous_objective"], abs=1e-6)
    assert [t["budget"] for t in other["tasks"]] == PAPER_BUDGETS


def test_integer_round_is_componentwise_rounding() -> None:
    data = solve_json("--integer", "round")
    assert data["integer"] == "round"
    for task in data["tasks"]:
        assert task["budget"] == round(task["continuous_budget"])


def test_choices_are_those_of_the_api() -> None:
    assert {m.value for m in cli.MethodChoice} == set(METHODS)
    assert {r.value for r in cli.IntegerChoice} == set(INTEGER_RULES)


# --------------------------------------------------------------------------- overrides


def total_budget(data: dict[str, Any]) -> int:
    return sum(task["budget"] for task in data["tasks"])


def test_a_larger_rate_gives_no_larger_total_budget() -> None:
    base = solve_json()
    busier = solve_json("--rate", "0.3")
    assert busier["rate"] == 0.3
    assert total_budget(busier) < total_budget(base)


def test_a_larger_alpha_gives_a_larger_total_budget() -> None:
    base = solve_json()
    keen = solve_json("--alpha", "60")
    assert keen["alpha"] == 60.0
    assert total_budget(keen) > total_budget(base)


def test_max_tokens_caps_every_budget() -> None:
    data = solve_json("--max-tokens", "100")
    assert data["max_tokens"] == 100
    budgets = [task["budget"] for task in data["tasks"]]
    assert max(budgets) == 100
    assert budgets[1] == budgets[4] == 100  # GSM8K and BBH want more than 100


def test_overrides_apply_to_a_profile_file(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    path = write_profile(paper_doc, "paper.toml")
    data = solve_json(path, "--rate", "0.05", "--alpha", "10", "--max-tokens", "5000")
    assert (data["rate"], data["alpha"], data["max_tokens"]) == (0.05, 10.0, 5000)


# --------------------------------------------------------------------------- rendering


def test_table_shows_every_task_and_the_summary() -> None:
    result = run("solve")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    for name in ("AIME", "GSM8K", "GPQA", "CRUXEval", "BBH", "ARC-Challenge"):
        assert name in out
    for label in (
        "Optimal budgets",
        "mean accuracy",
        "utilisation",
        "mean waiting time",
        "mean system time",
        "J at integer budgets",
        "J(l*) continuous",
        "lower bound (41)",
        "loss bound of integer budgets",
        "KKT residual",
        "gap bound",
        "contraction L_inf",
        "step bound 2/L_J",
        "bounds hold on",
        "level set",
        "rho_bar",
    ):
        assert label in out, label
    assert " 341 " in out
    assert "340.89" in out
    assert "346.24" in out


def test_many_tasks_show_a_summary_and_the_largest_budgets(write_profile: WriteProfile) -> None:
    n = 51  # more than 50 task types: summary form
    path = write_profile(many_tasks_document(n), "many.json")
    data = solve_json(path)
    result = run("solve", path)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "task types (N)" in out
    assert f" {n} " in out
    for label in ("at zero", "at l_max", "in between", "total budget", "mean budget"):
        assert label in out
    shown = [task["name"] for task in data["tasks"] if task["name"] in out]
    assert len(shown) == 20
    largest = sorted(data["tasks"], key=lambda t: -t["continuous_budget"])
    assert {t["name"] for t in largest[:20]} == set(shown)
    total = total_budget(data)
    assert f"{total:,}" in out


def test_up_to_the_limit_every_task_is_a_row(write_profile: WriteProfile) -> None:
    n = 50
    result = run("solve", write_profile(many_tasks_document(n), "fifty.toml"))
    assert result.exit_code == 0, result.stderr
    assert all(f"type-{k:03d}" in result.stdout for k in range(n))
    assert "task types (N)" not in result.stdout


def test_spinner_goes_to_stderr_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli._solve, "SPINNER_MIN_TASKS", 1)
    monkeypatch.setenv("FORCE_COLOR", "1")  # make Rich treat stderr as a terminal
    result = run("solve", "--json")
    assert result.exit_code == 0
    assert "Solving for 6 task types" in result.stderr
    assert [t["budget"] for t in strict_json(result.stdout)["tasks"]] == PAPER_BUDGETS


def test_no_spinner_below_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = run("solve", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_undefined_lower_bound_is_null_and_n_a(write_profile: WriteProfile) -> None:
    # (41) needs lambda (E[S] + c_max) < 1; here 0.1 * (1.0 + 9.5) >= 1
    slow = {"name": "slow", "share": 1, "A": 0.5, "b": 0.05, "D": 0.1, "t0": 1.0, "c": 9.5}
    path = write_profile({"rate": 0.1, "alpha": 30.0, "max_tokens": 100, "tasks": [slow]})
    data = solve_json(path)
    assert data["lower_bound"] is None
    assert [t["budget"] for t in data["tasks"]] == [0]
    table = run("solve", path)
    assert table.exit_code == 0
    assert [line.split()[-1] for line in table.stdout.splitlines() if "lower bound" in line] == [
        "n/a"
    ]


def test_non_finite_values_become_null() -> None:
    data = {"a": math.inf, "b": [math.nan, 1.5, {"c": -math.inf}], "d": "x", "e": 3, "f": None}
    assert cli.finite(data) == {
        "a": None,
        "b": [None, 1.5, {"c": None}],
        "d": "x",
        "e": 3,
        "f": None,
    }


def test_no_convergence_is_a_warning_and_exit_code_one() -> None:
    result = run("solve", "--json", "--method", "fixed-point", "--max-iter", "1")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: ")
    assert "did not converge" in lines[0]
    data = strict_json(result.stdout)  # the result is printed all the same
    assert data["solver"]["converged"] is False
    assert data["solver"]["iterations"] == 1


def test_no_convergence_in_table_mode() -> None:
    result = run("solve", "--method", "gradient", "--max-iter", "3")
    assert result.exit_code == 1
    assert "NO:" in result.stdout
    assert result.stderr.startswith("warning: ")


def test_version_and_help() -> None:
    version = run("--version")
    assert version.exit_code == 0
    assert version.stdout.strip() == f"thinkq {cli.__version__}"
    bare = run()
    assert bare.exit_code == 0
    assert "solve" in bare.stdout
    helped = run("solve", "--help")
    assert helped.exit_code == 0
    for option in ("--rate", "--alpha", "--max-tokens", "--method", "--integer", "--json"):
        assert option in helped.stdout


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_invalid_profile_files_fail_with_one_line(
    bad_profile: BadProfile, tmp_path: Path, as_json: bool
) -> None:
    path = bad_profile.write(tmp_path)
    result = run("solve", path, *(["--json"] if as_json else []))
    fragments = [str(path), bad_profile.fragment]
    if bad_profile.field is not None:
        fragments.append(bad_profile.field_text)
    if bad_profile.task_text is not None:
        fragments.append(bad_profile.task_text)
    assert_one_error_line(result, *fragments)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "option", "fragment"),
    [
        (["--method", "foo"], "'--method'", "foo"),
        (["--integer", "nearest"], "'--integer'", "nearest"),
        (["--rate", "abc"], "'--rate'", "number"),
        (["--rate", "-1"], "option --rate", "must be > 0"),
        (["--rate", "0"], "option --rate", "must be > 0"),
        (["--rate", "nan"], "option --rate", "finite"),
        (["--rate", "100"], "option --rate", "unstable"),
        (["--alpha", "0"], "option --alpha", "must be > 0"),
        (["--alpha", "inf"], "option --alpha", "finite"),
        (["--max-tokens", "1.5"], "'--max-tokens'", "integer"),
        (["--max-tokens", "-1"], "option --max-tokens", ">= 0"),
        (["--tol", "0"], "option --tol", "positive"),
        (["--tol", "-1e-3"], "option --tol", "positive"),
        (["--max-iter", "0"], "'--max-iter'", "1"),
        (["--bogus"], "--bogus", "No such option"),
    ],
)
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_bad_option_values_fail_with_one_line(
    args: list[str], option: str, fragment: str, as_json: bool
) -> None:
    result = run("solve", *args, *(["--json"] if as_json else []))
    assert_one_error_line(result, option, fragment)
    assert result.stdout == ""


def test_override_errors_name_the_option_even_with_a_file(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    path = write_profile(paper_doc, "paper.toml")
    line = assert_one_error_line(run("solve", path, "--max-tokens", "-7"), "option --max-tokens")
    assert "-7" in line


def test_unknown_command() -> None:
    assert_one_error_line(run("frobnicate"), "frobnicate")


# --------------------------------------------------------------------------- processes


def console_script() -> Path:
    script = Path(sys.executable).with_name("thinkq")
    assert script.exists(), f"the thinkq console script is not installed next to {sys.executable}"
    return script


def test_installed_console_script_solves_the_paper() -> None:
    done = subprocess.run(
        [console_script(), "solve", "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [t["budget"] for t in strict_json(done.stdout)["tasks"]] == PAPER_BUDGETS


def test_installed_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    doc = paper_document()
    doc["tasks"][1]["b"] = -1.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    done = subprocess.run(
        [console_script(), "solve", str(path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {path}: task 'GSM8K': field 'b': must be > 0 (per token), got -1"
    ]


def test_python_dash_m_thinkq() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "thinkq", "solve", "--json", "--max-tokens", "200"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = strict_json(done.stdout)
    assert data["max_tokens"] == 200
    assert max(t["budget"] for t in data["tasks"]) == 200
