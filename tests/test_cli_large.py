"""A 100,000-type JSON profile through the CLI: loaded, solved to the optimum, summarised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import thinkq
from thinkq import cli, model

N = 100_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(2026)
    A = rng.uniform(0.05, 0.9, N)
    columns = {
        "share": rng.gamma(1.0, 1.0, N),
        "A": A,
        "b": 10 ** rng.uniform(-4, -1, N),
        "D": rng.uniform(0, 1 - A),
        "t0": rng.uniform(0.01, 0.5, N),
        "c": rng.uniform(0.005, 0.03, N),
    }
    tasks = [
        {"name": f"cluster-{k}", **{key: float(v[k]) for key, v in columns.items()}}
        for k in range(N)
    ]
    path = tmp_path_factory.mktemp("big") / "big.json"
    path.write_text(json.dumps({"rate": 2.0, "alpha": 30.0, "max_tokens": 32768, "tasks": tasks}))
    return path


def test_solves_to_the_optimum(big: Path):
    result = CliRunner().invoke(cli.app, ["solve", str(big), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["tasks"]) == N
    solver = data["solver"]
    assert solver["converged"] is True
    profile = thinkq.load_profile(big)
    l_star = np.array([t["continuous_budget"] for t in data["tasks"]])
    # the certificate, recomputed here from the printed budgets
    assert model.kkt_residual(profile, l_star) <= 1e-7
    assert solver["gap_bound"] <= 1e-9 * abs(data["continuous_objective"])
    assert data["continuous_objective"] == pytest.approx(model.objective(profile, l_star))
    # no nearby point is better, and the integer budgets cost little
    rng = np.random.default_rng(0)
    for _ in range(5):
        nearby = np.clip(l_star + rng.normal(0.0, 1.0, N), 0, profile.max_tokens)
        assert model.objective(profile, nearby) <= data["continuous_objective"]
    budgets = np.array([t["budget"] for t in data["tasks"]])
    assert np.all(np.abs(budgets - l_star) <= 1)
    assert 0 <= data["continuous_objective"] - data["objective"] <= data["loss_bound"]
    assert 0 < np.count_nonzero(budgets) < N  # a real mix of zero and positive budgets


def test_table_is_a_summary(big: Path):
    result = CliRunner().invoke(cli.app, ["solve", str(big)])
    assert result.exit_code == 0
    assert "task types (N)" in result.stdout
    assert "100,000" in result.stdout
    assert "The 20 largest budgets" in result.stdout
    assert result.stdout.count("cluster-") == 20
