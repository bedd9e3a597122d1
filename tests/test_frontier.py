"""``thinkq frontier``: accuracy against mean and p95 system time along alpha."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import thinkq
from conftest import paper_document, write_document
from thinkq import cli, model
from thinkq.slo.frontier import UTILISATION_STOP, first_alpha, frontier
from thinkq.slo.times import tails
from thinkq.tails import system_times


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def traced(*args: str | Path) -> dict[str, Any]:
    result = run("frontier", "--json", *args)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# --------------------------------------------------------------------------- the trace


def test_the_papers_frontier_from_zero_to_the_stability_edge() -> None:
    paper = thinkq.paper_profile()
    trace = frontier(paper, times=tails())
    points = trace.points
    assert len(points) == 30
    assert points[0].alpha == 0.0
    assert points[0].budgets == (0,) * 6
    alphas = [p.alpha for p in points]
    assert alphas == sorted(alphas)
    assert alphas[1] > first_alpha(paper)  # the grid starts where budgets leave zero
    # more alpha buys accuracy with time: both rise along the trace
    accuracy = np.array([p.accuracy for p in points])
    mean = np.array([p.mean_system_time for p in points])
    assert np.all(np.diff(accuracy) >= -1e-12)
    assert np.all(np.diff(mean) >= -1e-12)
    assert trace.stop == "utilisation"
    assert points[-1].utilization >= UTILISATION_STOP > points[-2].utilization
    for point in points[1::7]:  # every point is thinkq solve at its alpha
        result = thinkq.solve(paper.replace(alpha=point.alpha))
        assert point.budgets == tuple(result.budgets.tolist())
        assert point.mean_system_time == result.mean_system_time
        times = system_times(paper, result.budgets)
        assert point.percentile_time == times.percentile(95)
    own = trace.operating_point
    assert own.alpha == 30.0
    assert own.budgets == tuple(thinkq.solve(paper).budgets.tolist())
    assert trace.percentile_method == "pk-transform"


def test_below_the_first_alpha_budgets_are_zero() -> None:
    paper = thinkq.paper_profile()
    alpha = first_alpha(paper)
    below = thinkq.solve(paper.replace(alpha=alpha * 0.999))
    assert below.continuous.budgets.max() == 0.0
    above = thinkq.solve(paper.replace(alpha=alpha * 1.5))
    assert above.continuous.budgets.max() > 0.0


def test_a_small_l_max_ends_where_the_accuracy_stops_growing() -> None:
    small = thinkq.paper_profile().replace(max_tokens=64)
    trace = frontier(small, points=12, times=tails())
    assert trace.stop in ("saturated", "accuracy")
    top = model.mean_accuracy(small, np.full(6, 64))
    assert trace.points[-1].accuracy >= top - 1e-4
    none = frontier(small.replace(max_tokens=0), points=3, times=tails())
    assert none.stop == "saturated"
    assert {p.budgets for p in none.points} == {(0,) * 6}


def test_bad_arguments_are_value_errors() -> None:
    paper = thinkq.paper_profile()
    with pytest.raises(ValueError, match=r"^points:"):
        frontier(paper, points=1, times=tails())
    with pytest.raises(ValueError, match=r"^percentile:"):
        frontier(paper, percentile=100.0, times=tails())


# --------------------------------------------------------------------------- the command


def test_the_table_marks_the_profiles_alpha_and_the_slo() -> None:
    result = run("frontier", "--points", "8", "--slo", "p95<=8s")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("tasks: AIME, GSM8K, GPQA, CRUXEval, BBH, ARC-Challenge")
    assert "Accuracy-latency frontier over alpha" in out
    assert "profile's alpha" in out
    assert "SLO: p95<=8s" in out
    assert "the trace ends where the utilisation reaches 0.95" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 8 + 2


def test_json_has_the_points_the_operating_point_and_the_slo() -> None:
    data = traced("--points", "6", "--slo", "mean<=2s", "--slo", "p95<=8s")
    assert data["format"] == "thinkq-frontier/1"
    assert data["percentile_method"] == "pk-transform"
    assert len(data["points"]) == 6
    first = data["points"][0]
    assert set(first) == {"alpha", "accuracy", "mean_system_time", "p95_system_time",
                          "utilization", "budgets"}  # fmt: skip
    assert data["operating_point"]["alpha"] == 30.0
    slo = data["slo"]
    assert [o["objective"] for o in slo["objectives"]] == ["mean<=2s", "p95<=8s"]
    assert slo["point"]["alpha"] == slo["shadow_price"]
    assert slo["point"]["mean_system_time"] <= 2.0
    assert slo["point"]["p95_system_time"] <= 8.0
    solved = json.loads(run("solve", "--json", "--slo", "mean<=2s", "--slo", "p95<=8s").stdout)
    assert slo["point"]["budgets"] == [t["budget"] for t in solved["tasks"]]


def test_the_plot_is_written(tmp_path: Path) -> None:
    png, svg = tmp_path / "frontier.png", tmp_path / "frontier.svg"
    result = run("frontier", "--points", "5", "--slo", "p95<=8s", "--plot", png)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"wrote {png}\n"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert run("frontier", "--points", "3", "--plot", svg).exit_code == 0
    assert b"<svg" in svg.read_bytes()[:500]


def test_on_a_batched_server_percentiles_are_simulated(tmp_path: Path) -> None:
    doc = paper_document() | {"rate": 1.0, "server": {"slots": 4, "tau0": 0.02, "tau1": 0.002}}
    path = write_document(tmp_path / "served.json", doc)
    data = traced(path, "--points", "3", "--queries", "5000", "--seed", "7")
    assert data["percentile_method"] == "simulation"
    assert (data["queries"], data["seed"]) == (5000, 7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--points", "1"], "error: Invalid value for '--points'"),
        (["--plot", "x.pdf"], "error: option --plot: x.pdf: use a .png or .svg file name"),
        (["--slo", "p95<=8"], "error: option --slo: 'p95<=8': the target has no unit"),
        (["--slo", "p100<=8s"], "error: option --slo: 'p100<=8s': the percentile must lie"),
        (["--slo", "p99<=0.1s"], "error: option --slo: 'p99<=0.1s': p99 at zero budgets is"),
        (["--queries", "10"], "error: Invalid value for '--queries'"),
    ],
)
def test_bad_options_are_one_error_line(args: list[str], message: str) -> None:
    result = run("frontier", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1
