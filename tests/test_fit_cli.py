"""``thinkq fit`` and ``thinkq solve --uncertainty`` end to end (Typer's CliRunner):
malformed records, the written profile and report, the plots' data, and the paper's
Table I recovered from records sampled from its curves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from record_cases import BAD_RECORDS, BadRecords
from thinkq import cli, load_profile, paper_profile
from thinkq.fit import fit_records
from thinkq.fit.plots import accuracy_panels, latency_panels, wilson
from thinkq.fit.synthetic import sample_records, write_jsonl

TABLE_I_BUDGETS = [0, 341, 0, 0, 346, 30]
PAPER_BUDGETS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def run(*args: object) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def errors(result: Result) -> list[str]:
    return result.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records of two of Table I's tasks at 6 budgets, 60 items, 1% stalls; GSM8K in
    4 runs and ARC in 2, so that the empirical shares are 2/3 and 1/3."""
    profile = paper_profile()
    budgets = [0, 16, 64, 256, 1024, 2048]
    records = []
    for k, name, runs in ((1, "GSM8K", 4), (5, "ARC", 2)):
        one = profile.from_arrays(
            names=[name],
            share=[1],
            **{key: getattr(profile, key)[[k]] for key in ("A", "b", "D", "t0", "c")},
            rate=0.1,
            alpha=30,
            max_tokens=32768,
        )
        records += sample_records(one, budgets, items=60, runs=runs, seed=k, stall_share=0.01)
    return write_jsonl(tmp_path_factory.mktemp("small") / "records.jsonl", records)


@pytest.fixture(scope="module")
def paper_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records sampled from Table I's curves: 250 items x 3 runs at 11 budgets."""
    records = sample_records(paper_profile(), PAPER_BUDGETS, seed=11, stall_share=0.01)
    return write_jsonl(tmp_path_factory.mktemp("paper") / "records.jsonl", records)


@pytest.fixture(scope="module")
def fitted(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``thinkq fit small -o fit.toml`` with 40 replicates."""
    out = tmp_path_factory.mktemp("fitted") / "fit.toml"
    result = run("fit", small, "-o", out, "--bootstrap", 40)
    assert result.exit_code == 0, result.stderr
    return out


# --------------------------------------------------------------------------- malformed records


@pytest.fixture(params=BAD_RECORDS, ids=[case.id for case in BAD_RECORDS])
def bad_records(request: pytest.FixtureRequest) -> BadRecords:
    case: BadRecords = request.param
    return case


def test_malformed_records_exit_2_name_the_line_and_write_nothing(
    tmp_path: Path, bad_records: BadRecords
):
    case = bad_records
    paths = case.write(tmp_path) or [tmp_path / case.file]
    out, plots = tmp_path / "out.toml", tmp_path / "plots"
    result = run("fit", *paths, "-o", out, "--plots", plots)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = errors(result)
    assert lines
    assert all(text.startswith("error: ") for text in lines)
    where = tmp_path / case.where
    assert any(text.startswith(f"error: {where}: {case.field}: ") for text in lines), lines
    assert any(case.fragment in text for text in lines)
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not (tmp_path / "out.fit.json").exists()
    assert not plots.exists()


# --------------------------------------------------------------------------- fit


def test_fit_writes_a_profile_that_solve_reads(fitted: Path):
    profile = load_profile(fitted)
    assert profile.names == ("GSM8K", "ARC")
    assert profile.max_tokens == 2048  # the largest measured budget
    assert profile.share.tolist() == pytest.approx([2 / 3, 1 / 3])  # empirical
    assert (profile.rate, profile.alpha) == (0.1, 30.0)
    assert np.all(profile.variance > 0)
    text = fitted.read_text()
    assert "# [" in text  # each parameter notes its interval
    assert "95% bootstrap intervals" in text
    solved = run("solve", fitted, "--json")
    assert solved.exit_code == 0, solved.stderr
    assert json.loads(solved.stdout)["tasks"][0]["budget"] > 0


def test_the_report_beside_the_profile_holds_the_replicates(fitted: Path):
    report = json.loads(fitted.with_name("fit.fit.json").read_text())
    assert report["format"] == "thinkq-fit/1"
    assert report["bootstrap"] == 40
    replicates = report["replicates"]
    assert replicates["names"] == ["GSM8K", "ARC"]
    assert np.array(replicates["A"]).shape == (40, 2)
    gsm8k = report["tasks"][0]
    low, high = gsm8k["accuracy"]["intervals"]["A"]
    assert low <= gsm8k["accuracy"]["A"] <= high
    assert gsm8k["resampling"] == "items"
    assert [b["budget"] for b in gsm8k["budgets"]] == [0, 16, 64, 256, 1024, 2048]


def test_fit_prints_parameters_intervals_and_goodness_of_fit(small: Path):
    result = run("fit", small, "--bootstrap", 20)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("GSM8K", "ARC", "95% intervals", "G2/dof", "chi2/dof", "nothing (use -o"):
        assert text in out
    assert out.count("[") >= 12  # an interval under every parameter


def test_fit_json(small: Path, tmp_path: Path):
    result = run("fit", small, "--bootstrap", 10, "--json", "-o", tmp_path / "p.json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert "replicates" not in data  # they are in the report file only
    assert data["written"] == [str(tmp_path / "p.json"), str(tmp_path / "p.fit.json")]
    task = data["tasks"][1]
    assert set(task["accuracy"]) >= {"A", "b", "D", "intervals", "deviance", "dof", "p_value"}
    assert set(task["latency"]) >= {"t0", "c", "variance", "intervals", "outliers", "p_value"}
    assert load_profile(tmp_path / "p.json").names == ("GSM8K", "ARC")


def test_operating_point_options(small: Path, tmp_path: Path):
    out = tmp_path / "p.toml"
    args = ("--rate", 0.3, "--alpha", 12, "--max-tokens", 8192, "--shares", "uniform")
    result = run("fit", small, "-o", out, "--bootstrap", 0, *args)
    assert result.exit_code == 0, result.stderr
    profile = load_profile(out)
    assert (profile.rate, profile.alpha, profile.max_tokens) == (0.3, 12.0, 8192)
    assert profile.share.tolist() == [0.5, 0.5]
    assert "above the largest measured budget 2048" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--rate", 50), "option --rate: "),
        (("--alpha", -1), "option --alpha: "),
        (("-o", "profile.yaml"), "option -o: "),
        (("-o", "absent/profile.toml"), "no such folder"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(small: Path, tmp_path: Path, args, fragment):
    result = run("fit", small, "--plots", tmp_path / "plots", *args)
    assert result.exit_code == 2
    (line,) = errors(result)
    assert line.startswith("error: ")
    assert fragment in line
    assert list(tmp_path.iterdir()) == []


def test_plots_into_a_file_is_an_error(small: Path, tmp_path: Path):
    (tmp_path / "plots").write_text("")
    result = run("fit", small, "--plots", tmp_path / "plots")
    assert result.exit_code == 2
    assert "option --plots" in result.stderr


def test_degenerate_tasks_fit_with_warnings(tmp_path: Path):
    profile = paper_profile()
    records = sample_records(profile, [0, 64, 512], items=30, runs=1, seed=1)
    records = [r for r in records if r["task"] != "AIME" or r["budget"] == 512]
    for r in records:
        if r["task"] == "GPQA":
            r["correct"] = True
    path = write_jsonl(tmp_path / "r.jsonl", records)
    result = run("fit", path, "-o", tmp_path / "p.toml", "--bootstrap", 5)
    assert result.exit_code == 0, result.stderr
    assert "warning: AIME: only budget 512 was measured" in result.stderr
    assert "warning: GPQA: all correct" in result.stderr
    fitted = load_profile(tmp_path / "p.toml")
    assert np.all(np.isfinite(fitted.A))
    assert fitted.A[0] == pytest.approx(1e-6)
    solved = json.loads(run("solve", tmp_path / "p.toml", "--json").stdout)
    assert solved["tasks"][0]["budget"] == 0
    assert solved["tasks"][2]["budget"] == 0


# --------------------------------------------------------------------------- solve --uncertainty


def test_solve_with_uncertainty_shows_budget_and_j_intervals(fitted: Path):
    result = run("solve", fitted, "--uncertainty", 40)
    assert result.exit_code == 0, result.stderr
    for text in ("Optimal budgets", "Uncertainty of the budgets", "40 bootstrap", "regret"):
        assert text in result.stdout
    data = json.loads(run("solve", fitted, "--uncertainty", 25, "--json").stdout)
    spread = data["uncertainty"]
    assert spread["replicates"] == 25
    assert spread["failed"] == 0
    for task, point in zip(spread["tasks"], data["tasks"], strict=True):
        assert task["budget"] == point["budget"]
        assert task["interval"][0] <= task["median"] <= task["interval"][1]
    low, high = spread["objective"]["optimal_interval"]
    assert low < data["objective"] < high
    assert spread["objective"]["regret_mean"] >= -1e-9


def test_uncertainty_follows_the_operating_point(fitted: Path):
    base = json.loads(run("solve", fitted, "--uncertainty", 20, "--json").stdout)
    busy = json.loads(run("solve", fitted, "--uncertainty", 20, "--json", "--rate", 0.25).stdout)
    assert busy["uncertainty"]["tasks"][0]["median"] < base["uncertainty"]["tasks"][0]["median"]


def test_solve_without_uncertainty_is_unchanged(fitted: Path):
    data = json.loads(run("solve", fitted, "--json").stdout)
    assert "uncertainty" not in data


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        ("too-many", "holds 40 replicates, 41 were asked for"),
        ("no-report", "no fit report beside the profile"),
        ("edited", "was edited after the fit"),
        ("no-profile", "give the PROFILE"),
        ("no-replicates", "stored no replicates"),
    ],
)
def test_uncertainty_errors(fitted: Path, tmp_path: Path, small: Path, edit: str, fragment: str):
    profile, count = fitted, 40
    if edit == "too-many":
        count = 41
    elif edit == "no-report":
        profile = Path(shutil.copy(fitted, tmp_path / "alone.toml"))
    elif edit == "edited":
        profile = Path(shutil.copy(fitted, tmp_path / "fit.toml"))
        shutil.copy(fitted.with_name("fit.fit.json"), tmp_path / "fit.fit.json")
        text = profile.read_text()
        start = text.index("\nA = ") + 5
        profile.write_text(text[:start] + "0.5  #" + text[start:])
    elif edit == "no-replicates":
        profile = tmp_path / "p.toml"
        assert run("fit", small, "-o", profile, "--bootstrap", 0).exit_code == 0
    args = ("solve", "--uncertainty", count) if edit == "no-profile" else ("solve", profile)
    result = run(*args, "--uncertainty", count) if edit != "no-profile" else run(*args)
    assert result.exit_code == 2
    (line,) = errors(result)
    assert line.startswith("error: option --uncertainty: ")
    assert fragment in line
    assert result.stdout == ""


def test_editing_the_operating_point_keeps_the_report_valid(fitted: Path, tmp_path: Path):
    profile = Path(shutil.copy(fitted, tmp_path / "fit.toml"))
    shutil.copy(fitted.with_name("fit.fit.json"), tmp_path / "fit.fit.json")
    profile.write_text(profile.read_text().replace("rate = 0.1 ", "rate = 0.2 "))
    result = run("solve", profile, "--uncertainty", 10, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rate"] == 0.2


# --------------------------------------------------------------------------- plots


def test_plots_are_written_and_show_the_fit(small: Path, tmp_path: Path):
    plots = tmp_path / "plots"
    result = run("fit", small, "--plots", plots, "--bootstrap", 10)
    assert result.exit_code == 0, result.stderr
    for name in ("accuracy.png", "accuracy.svg", "latency.png", "latency.svg"):
        assert (plots / name).stat().st_size > 1000
    assert (plots / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_data_behind_the_plots(small: Path):
    result = fit_records([small], bootstrap=30)
    accuracy, latency = accuracy_panels(result), latency_panels(result)
    assert [p.name for p in accuracy] == [p.name for p in latency] == ["GSM8K", "ARC"]
    for panel, task in zip(accuracy, result.tasks, strict=True):
        d = task.data
        assert panel.budgets.tolist() == d.budgets.tolist()
        assert panel.accuracy == pytest.approx(d.correct / d.trials)
        assert np.all(panel.low <= panel.accuracy)
        assert np.all(panel.accuracy <= panel.high)
        assert panel.fitted == pytest.approx(task.accuracy.curve(panel.grid))
        assert panel.grid[0] == 0
        assert panel.grid[-1] > d.budgets.max()
        assert panel.band is not None
        inside = (panel.band[0] <= panel.fitted + 1e-9) & (panel.fitted <= panel.band[1] + 1e-9)
        assert inside.mean() > 0.9
    for panel, task in zip(latency, result.tasks, strict=True):
        assert panel.mean == pytest.approx(task.data.latency.mean)
        assert panel.fitted == pytest.approx(task.latency.t0 + task.latency.c * panel.grid)
        assert panel.sd == pytest.approx(np.sqrt(task.latency.budget_variance))
        assert panel.outliers == task.latency.outliers


def test_wilson_intervals():
    low, high = wilson(np.array([0.0, 5, 10]), np.array([10.0, 10, 10]))
    assert low[0] == 0
    assert high[2] == 1
    assert low[1] == pytest.approx(0.2366, abs=1e-4)
    assert high[1] == pytest.approx(0.7634, abs=1e-4)


# --------------------------------------------------------------------------- Table I round trip


def test_records_from_table_i_give_table_i_budgets(paper_records: Path, tmp_path: Path):
    """Fit 49,500 sampled records, solve at the paper's operating point: the budgets are
    Table I's up to sampling noise (zero stays zero; GSM8K and BBH within 6%, ARC within
    5 tokens), and Table I's budgets lie inside the propagated 95% intervals."""
    out = tmp_path / "paper.toml"
    fitted = run("fit", paper_records, "-o", out, "--max-tokens", 32768, "--bootstrap", 50)
    assert fitted.exit_code == 0, fitted.stderr
    data = json.loads(run("solve", out, "--json", "--uncertainty", 50).stdout)
    budgets = [t["budget"] for t in data["tasks"]]
    assert [budgets[k] for k in (0, 2, 3)] == [0, 0, 0]
    assert budgets[1] == pytest.approx(341, rel=0.06)
    assert budgets[4] == pytest.approx(346, rel=0.06)
    assert budgets[5] == pytest.approx(30, abs=5)
    for task, paper in zip(data["uncertainty"]["tasks"], TABLE_I_BUDGETS, strict=True):
        assert task["interval"][0] <= paper <= task["interval"][1], task
