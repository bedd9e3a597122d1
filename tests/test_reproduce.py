"""thinkq reproduce: the files, and the data behind each table and figure (not pixels)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import thinkq
from thinkq import model
from thinkq.paper.experiments import PAPER_BUDGETS, figure2
from thinkq.paper.reproduce import Reproduction, reproduce

TABLE_I_L_STAR = (0.0, 340.89, 0.0, 0.0, 346.24, 30.14)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Reproduction, Path]:
    out = tmp_path_factory.mktemp("reproduce")
    return reproduce(thinkq.paper_profile(), out), out


def test_writes_every_file(run):
    result, out = run
    names = {p.name for p in result.files}
    expected = {
        "table1.md",
        "table1.csv",
        "report.md",
        *(
            f"{stem}.{ext}"
            for stem in ("fig2_accuracy", "fig3_policies", "fig4_sensitivity")
            for ext in ("png", "svg")
        ),
    }
    assert names == expected
    for name in expected:
        assert (out / name).stat().st_size > 100
    assert (out / "fig2_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "fig3_policies.svg").read_bytes()[:2000]
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_table_one_sets_ours_beside_the_paper(run):
    _, out = run
    with (out / "table1.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [r["dataset"] for r in rows] == list(thinkq.paper_profile().names)
    ours = np.array([float(r["l_star"]) for r in rows])
    assert np.allclose(ours, TABLE_I_L_STAR, atol=0.01)
    assert [int(r["l_int"]) for r in rows] == [0, 341, 0, 0, 346, 30]
    assert [float(r["paper_l_star"]) for r in rows] == list(PAPER_BUDGETS)
    markdown = (out / "table1.md").read_text()
    assert "| GSM8K | 0.7230 |" in markdown
    assert "340.89" in markdown
    assert "340.5" in markdown


def test_figure2_data_are_the_fitted_curves():
    profile = thinkq.paper_profile()
    data = figure2(profile)
    assert data.accuracy.shape == (6, data.budgets.size)
    assert data.budgets[0] == 0
    assert data.budgets[-1] == pytest.approx(profile.max_tokens)
    for k in range(6):
        assert np.allclose(
            data.accuracy[k],
            profile.A[k] * (1 - np.exp(-profile.b[k] * data.budgets)) + profile.D[k],
        )
        assert np.all(np.diff(data.accuracy[k]) >= 0)


def test_figure3_optimal_beats_uniform_and_simulation_agrees(run):
    result, _ = run
    policies = {p.label: p for p in result.figure3.policies}
    assert set(policies) == {"uniform 0", "uniform 100", "uniform 500", "optimal"}
    best = policies["optimal"].objective
    assert all(best > p.objective for label, p in policies.items() if label != "optimal")
    assert policies["uniform 500"].objective < policies["uniform 0"].objective
    profile = thinkq.paper_profile()
    for p in policies.values():
        assert p.objective == pytest.approx(model.objective(profile, np.array(p.budgets)))
        lo, hi = p.simulated_ci
        assert lo < p.simulated_objective < hi
        assert abs(p.simulated_objective - p.objective) < 4 * (hi - lo)


def test_figure4_is_unimodal_at_the_optimum_above_the_bound(run):
    result, _ = run
    fig4 = result.figure4
    assert fig4.task == "GSM8K"
    assert fig4.budgets[0] == 0
    assert fig4.budgets[-1] == 1000
    assert abs(fig4.argmax - 340.89) <= 1
    peak = int(np.argmax(fig4.objective))
    assert np.all(np.diff(fig4.objective[: peak + 1]) > 0)
    assert np.all(np.diff(fig4.objective[peak:]) < 0)
    defined = ~np.isnan(fig4.lower_bound)
    assert defined.all()
    assert np.all(fig4.lower_bound <= fig4.objective)
    assert fig4.simulated_budgets.size == 21
    analytic = np.interp(fig4.simulated_budgets, fig4.budgets, fig4.objective)
    inside = (fig4.simulated_low <= analytic) & (analytic <= fig4.simulated_high)
    assert inside.sum() >= 15  # 95% intervals: about 20 of 21


def test_report_states_numbers_and_differences(run):
    _, out = run
    report = (out / "report.md").read_text()
    assert "340.5" in report
    assert "340.89" in report
    assert "differs from the paper's printed l*" in report
    assert "best policy is **optimal**" in report
    assert "P-K 2.17" in report


def test_a_batched_profile_is_reproduced_on_its_server_with_a_slots_section(tmp_path: Path):
    server = thinkq.batching.Server(slots=8, tau0=0.02, tau1=0.002)
    profile = thinkq.paper_profile().with_server(server)
    result = reproduce(profile, tmp_path)
    names = {p.name for p in result.files}
    assert {"fig5_slots.png", "fig5_slots.svg"} <= names
    # the optimum is the batched one, not the paper's M/G/1 optimum
    solved = thinkq.solve(profile)
    np.testing.assert_array_equal(result.result.budgets, solved.budgets)
    assert not np.array_equal(solved.budgets, thinkq.solve(thinkq.paper_profile()).budgets)
    report = (tmp_path / "report.md").read_text()
    assert "Server: 8 slots, step time tau(n) = 0.02 + 0.002 n s" in report
    assert "(batched model)" in report
    assert "(P-K)" not in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "|" in line[2:]]
    slots = [row.split("|")[1].strip() for row in rows]
    assert [s for s in slots if s in ("1", "2", "4", "8", "16", "32", "64")] == [
        "1", "2", "4", "8", "16", "32", "64"
    ]  # fmt: skip
    # one slot of the section is the paper's own optimum
    paper = thinkq.solve(thinkq.paper_profile()).budgets
    assert f"| 1 | {', '.join(str(b) for b in paper)} |" in report
