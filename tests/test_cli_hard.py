"""`thinkq solve` on the instances where the paper's fixed point fails (hard_instances.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import thinkq
from oracle import objective_value, solve_oracle, term_scale
from thinkq import cli

ENTRIES = json.loads((Path(__file__).parent / "hard_instances.json").read_text())["instances"]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"N{len(e['tasks'])}")
def test_cli_converges_where_the_fixed_point_fails(entry: dict, tmp_path: Path) -> None:
    path = tmp_path / "hard.json"
    path.write_text(json.dumps(entry))
    runner = CliRunner()
    plain = runner.invoke(cli.app, ["solve", str(path), "--method", "fixed-point", "--json"])
    assert plain.exit_code == 1  # not converged: result printed, warning, exit 1
    assert "did not converge" in plain.stderr
    result = runner.invoke(cli.app, ["solve", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["solver"]["converged"] is True
    profile = thinkq.load_profile(path)
    l_star = np.array([t["continuous_budget"] for t in data["tasks"]])
    reference = solve_oracle(profile)
    ours = objective_value(profile, l_star)
    # 1e-7 relative in J (relative to the size of J's terms, as J itself may be near 0)
    assert abs(ours - reference.objective) <= 1e-7 * term_scale(profile, l_star)
    assert ours >= reference.objective - 1e-10 * term_scale(profile, l_star)
