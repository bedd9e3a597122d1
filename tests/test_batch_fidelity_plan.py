"""The throughput runs of ``benchmarks/batch_fidelity.py`` serve the budgets they are given.

The runs fix every budget through the profile (l_max, the accuracy curves, alpha) and
let the gateway's solver find them: a plan that drifted from the given budgets would
measure another workload than the one its name and ``docs/batching.md`` state.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import bench_scripts
import thinkq

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fidelity() -> ModuleType:
    return bench_scripts.load("batch_fidelity")


def _plan(fidelity: ModuleType, budget: str, rho: float) -> dict[str, tuple[thinkq.Profile, int]]:
    profile = thinkq.load_profile(ROOT / "benchmarks" / "smollm2_batched8.toml")
    args = argparse.Namespace(
        batches=[], throughput=rho, throughput_budget=budget, throughput_ratio=1.5, compare=False
    )
    plan: dict[str, tuple[thinkq.Profile, int]] = fidelity.runs(profile, args)
    return plan


@pytest.mark.parametrize(
    ("budget", "expected"), [("16", [16, 16]), ("0,256", [0, 256]), ("384,0", [384, 0])]
)
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_the_solver_keeps_the_given_budgets(
    fidelity: ModuleType, budget: str, expected: list[int], rho: float
) -> None:
    plan = _plan(fidelity, budget, rho)
    names = sorted(plan)
    assert len(names) == 2
    assert all(name.endswith(f"utilization {rho:g}, budgets {','.join(map(str, expected))}")
               for name in names)  # fmt: skip
    for profile, slots in plan.values():
        assert slots in (1, 8)
        np.testing.assert_array_equal(thinkq.solve(profile).budgets, expected)
    one = next(p for p, s in plan.values() if s == 1)
    many = next(p for p, s in plan.values() if s == 8)
    service = thinkq.model.moments(one, expected).mean
    assert one.rate * service == pytest.approx(rho)  # one slot loaded to rho
    assert many.rate == pytest.approx(1.5 * one.rate)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("0,16,32", "one budget or 2"),
        ("-1", "(>= 0)"),
        ("8,256", "each budget 0 or the largest"),
        ("16,x", "whole numbers of tokens"),
    ],
)
def test_bad_budgets_are_one_line_errors(fidelity: ModuleType, budget: str, message: str) -> None:
    with pytest.raises(SystemExit) as stop:
        _plan(fidelity, budget, 0.8)
    text = str(stop.value)
    assert text.startswith("error: --throughput-budget: ")
    assert message in text
    assert "\n" not in text
