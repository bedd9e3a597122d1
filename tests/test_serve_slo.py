"""The gateway under latency objectives: ``thinkq serve --slo`` (issue 16, item 5).

The gateway runs on a clock the test moves; arrivals are counted as the gateway counts
them, so the estimated rate is what the test offers. Nothing here talks to a server
(the real llama.cpp run is ``benchmarks/slo_fidelity.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_document
from fakes import Clock, FakeServer, profile
from thinkq.cli import app
from thinkq.errors import OverloadedError
from thinkq.measure.generation import Sampling
from thinkq.measure.prompts import Cue
from thinkq.serve import Gateway
from thinkq.serve.queue import Record
from thinkq.serve.slo import max_rate, measured
from thinkq.slo import parse_objectives, solve_slo
from thinkq.tails import system_times

WINDOW = 60.0
CUE = Cue("", 8, ())


def gateway(objectives: list[str], clock: Clock, **changes: object) -> Gateway:
    return Gateway(
        profile(**changes), FakeServer().server(), resolve_every=0.0, window=WINDOW,
        clock=clock, objectives=objectives, max_wait=1e9, max_queue=10_000,
    )  # fmt: skip


def offer(g: Gateway, clock: Clock, rate: float, seconds: float) -> None:
    """Count arrivals at ``rate`` (both types in turn) for ``seconds``, none refused."""
    for k in range(int(rate * seconds)):
        clock.now += 1.0 / rate
        g.estimator.arrival(k % 2)


def test_the_budgets_are_the_slo_solves_at_the_estimated_load() -> None:
    clock = Clock()
    g = gateway(["p95<=1.5s"], clock)
    offer(g, clock, 2.0, WINDOW + 1)
    plan = g.resolve()
    estimate = g.controller.at(g.estimator.estimate())
    expected = solve_slo(estimate, ["p95<=1.5s"])
    assert plan.budgets == tuple(expected.budgets.tolist())
    assert plan.slo is not None
    assert plan.slo.meetable
    assert plan.slo.admitted == 1.0
    assert plan.slo.shadow_price == pytest.approx(expected.shadow_price)
    p95 = system_times(estimate, np.asarray(plan.budgets)).percentile(95)
    assert plan.slo.predicted[0] == pytest.approx(p95, rel=1e-9)
    assert p95 <= 1.5 < system_times(estimate, expected.budgets + 5).percentile(95)
    state = g.state()["slo"]
    assert state["objectives"][0]["objective"] == "p95<=1.5s"
    assert state["objectives"][0]["target"] == 1.5
    assert state["objectives"][0]["predicted"] == pytest.approx(p95, rel=1e-9)
    assert state["objectives"][0]["measured"] is None  # nothing served yet
    g.publish()
    text = g.metrics.exposition().decode()
    assert 'thinkq_slo_target_seconds{objective="p95<=1.5s"} 1.5' in text
    assert "thinkq_slo_admitted_fraction 1.0" in text


def test_without_objectives_the_state_has_no_slo_and_the_budgets_are_alphas() -> None:
    clock = Clock()
    g = Gateway(profile(), FakeServer().server(), resolve_every=0.0, clock=clock)
    assert g.state()["slo"] is None
    assert "thinkq_slo_" not in g.metrics.exposition().decode()


def test_an_unmeetable_objective_admits_the_fraction_zero_budgets_can_serve() -> None:
    clock = Clock()
    g = gateway(["p95<=0.3s"], clock)
    offer(g, clock, 9.0, WINDOW + 1)  # capacity at zero budgets is 10/s
    plan = g.resolve()
    assert plan.budgets == (0, 0)
    slo = plan.slo
    assert slo is not None
    assert not slo.meetable
    assert slo.max_rate is not None
    assert slo.admitted == pytest.approx(slo.max_rate / plan.rate)
    assert 0.2 < slo.admitted < 0.9
    # at the largest rate zero budgets meet the objective, and 1 % above they do not
    zero = np.zeros(2, dtype=np.int64)
    point = g.controller.at(g.estimator.estimate())
    assert system_times(point.replace(rate=slo.max_rate), zero).percentile(95) <= 0.3
    assert system_times(point.replace(rate=1.01 * slo.max_rate), zero).percentile(95) > 0.3

    refusals: list[OverloadedError] = []

    async def main() -> int:
        admitted = 0
        for k in range(200):
            try:
                g.admit(k % 2, kind="chat", messages=[], text=f"q{k}", cue=CUE,
                        sampling=Sampling())  # fmt: skip
                admitted += 1
            except OverloadedError as refusal:
                refusals.append(refusal)
        return admitted

    admitted = asyncio.run(main())
    assert abs(admitted - 200 * slo.admitted) <= 1  # thinned evenly
    assert all("p95<=0.3s cannot be met" in str(r) for r in refusals)
    assert all(r.retry_after >= 1 for r in refusals)
    assert g.state()["slo"]["admitted_fraction"] == pytest.approx(slo.admitted)


def test_an_overloaded_plan_under_objectives_admits_what_zero_budgets_can_serve() -> None:
    clock = Clock()
    g = gateway(["mean<=0.5s"], clock)
    offer(g, clock, 20.0, WINDOW + 1)  # twice the capacity at zero budgets
    plan = g.resolve()
    assert plan.overloaded
    assert plan.slo is not None
    assert plan.slo.max_rate is not None
    # M/D/1 at zero budgets (0.1 s): mean T = 0.1 + r 0.01 / (2 (1 - 0.1 r)) = 0.5 at r = 8.89
    assert plan.slo.max_rate == pytest.approx(80 / 9, rel=2e-3)
    assert plan.slo.admitted == pytest.approx(plan.slo.max_rate / plan.rate)


def test_max_rate_is_the_rate_where_the_objective_binds() -> None:
    point = profile(rate=1.0)
    objectives = parse_objectives(["mean<=0.2s"])
    top = max_rate(point, objectives, 9.0)
    # mean T = 0.1 + r 0.01 / (2 (1 - 0.1 r)) = 0.2 at r = 20 / 3
    assert top == pytest.approx(20 / 3, rel=2e-3)
    assert max_rate(point, objectives, 1.0) == 1.0  # met at the rate asked for


def test_measured_objectives_are_the_windows_mean_and_percentile() -> None:
    times = [0.1, 0.2, 0.3, 0.4, 1.0]
    records = [Record(0.0, 0.0, t, "math" if i % 2 else "chat", 0, 0, "ok")
               for i, t in enumerate(times)]  # fmt: skip
    records.append(Record(0.0, 0.0, 50.0, "math", 0, 0, "upstream_error"))  # not served
    objectives = parse_objectives(["p80<=1s", "mean<=1s", "math:p50<=1s"])
    p80, mean, math_p50 = measured(objectives, records)
    assert p80 == 0.4  # the smallest time with at least 80 % of the five at or below it
    assert mean == pytest.approx(0.4)
    assert math_p50 == 0.2  # math: 0.2 and 0.4
    assert measured(objectives, []) == (None, None, None)


def test_the_budgets_in_force_stay_while_they_meet_the_objective_and_gain_little() -> None:
    clock = Clock()
    g = gateway(["p95<=1.5s"], clock)
    offer(g, clock, 2.0, WINDOW + 1)
    first = g.resolve()
    offer(g, clock, 2.0, 1.0)  # the same load a second later
    second = g.resolve()
    assert second.budgets == first.budgets
    assert not second.switched


runner = CliRunner()


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ("p95<=oops", "option --slo:"),
        ("p150<=8s", "option --slo:"),
        ("nosuchtask:p95<=8s", "option --slo:"),
    ],
)
def test_serve_refuses_a_bad_objective_with_one_line(
    slo: str, message: str, tmp_path: Path
) -> None:
    path = write_document(tmp_path / "profile.toml", profile().to_dict())
    args = ["serve", "--upstream", "http://127.0.0.1:9/v1", "--profile", str(path)]
    result = runner.invoke(app, [*args, "--slo", slo])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
