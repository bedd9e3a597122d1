"""What-if sweeps: monotone frontiers and the saturation point reported, not crashed into."""

from __future__ import annotations

import math

import numpy as np
import pytest

import thinkq
from thinkq.paper.sweep import sweep


@pytest.fixture(scope="module")
def paper() -> thinkq.Profile:
    return thinkq.paper_profile()


def test_alpha_sweep_never_lowers_accuracy_or_system_time(paper):
    result = sweep(paper, over="alpha", start=1.0, stop=2000.0, points=40, queries=None)
    accuracy = np.array([p.accuracy for p in result.points])
    system = np.array([p.mean_system_time for p in result.points])
    assert np.all(np.diff(accuracy) >= -1e-12)
    assert np.all(np.diff(system) >= -1e-12)
    assert accuracy[-1] > accuracy[0] + 0.1  # the sweep really moves along the frontier


def test_rate_sweep_never_raises_the_total_budget_and_reports_saturation(paper):
    saturation = 1.0 / float(np.dot(paper.share, paper.t0))
    result = sweep(paper, over="rate", start=0.01, stop=1.5 * saturation, points=40, queries=2000)
    assert result.saturation_rate == pytest.approx(saturation)
    stable = [p for p in result.points if p.stable]
    unstable = [p for p in result.points if not p.stable]
    assert unstable
    assert all(p.value >= saturation for p in unstable)
    assert all(p.value < saturation for p in stable)
    assert all(p.budgets is None and p.accuracy is None for p in unstable)
    total = np.array([p.total_budget for p in stable])
    assert np.all(np.diff(total) <= 1e-9)
    assert total[0] > total[-1]
    assert all(p.p95_system_time is not None and p.p95_system_time > 0 for p in stable)


def test_sweep_points_are_the_solver_optimum(paper):
    result = sweep(paper, over="rate", start=0.05, stop=0.5, points=3, queries=None)
    for point in result.points:
        direct = thinkq.solve(paper.replace(rate=point.value))
        assert point.budgets == tuple(direct.budgets.tolist())
        assert point.objective == pytest.approx(direct.continuous_objective, rel=1e-12)


def test_to_dict_names_the_budgets(paper):
    data = sweep(paper, over="alpha", start=10, stop=30, points=2, queries=None).to_dict()
    assert data["parameter"] == "alpha"
    assert data["points"][1]["alpha"] == 30
    gsm8k = data["points"][1]["tasks"][1]
    assert (gsm8k["name"], gsm8k["budget"]) == ("GSM8K", 341)
    assert gsm8k["continuous_budget"] == pytest.approx(340.89, abs=0.5)


def test_every_t0_zero_never_saturates(paper):
    # issue 12: a valid profile whose every t0 is 0 divided by zero
    p = paper
    fast = thinkq.Profile.from_arrays(
        names=p.names, share=p.share, A=p.A, b=p.b, D=p.D, t0=np.zeros(p.size), c=p.c,
        rate=p.rate, alpha=p.alpha, max_tokens=p.max_tokens,
    )  # fmt: skip
    result = sweep(fast, over="rate", start=0.1, stop=1.0, points=2, queries=None)
    assert result.saturation_rate == math.inf
    assert all(p.stable for p in result.points)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"over": "beta", "start": 1, "stop": 2}, "over"),
        ({"over": "rate", "start": 2, "stop": 1}, "start"),
        ({"over": "rate", "start": 0, "stop": 1}, "start"),
        ({"over": "rate", "start": 1, "stop": 2, "points": 1}, "points"),
    ],
)
def test_bad_arguments_name_the_argument(paper, kwargs, name):
    with pytest.raises(ValueError, match=name):
        sweep(paper, **kwargs)


# ------------------------------------------------------------------ over slots

LAW = thinkq.batching.Server(slots=1, tau0=0.02, tau1=0.002)


def test_a_slots_sweep_is_the_batched_optimum_at_each_power_of_two(paper):
    profile = paper.replace(rate=0.5).with_server(LAW)
    result = sweep(profile, over="slots", start=1, stop=48, queries=2000)
    assert [p.value for p in result.points] == [1, 2, 4, 8, 16, 32, 48]
    for point in result.points:
        here = profile.with_server(thinkq.batching.Server(int(point.value), 0.02, 0.002))
        solved = thinkq.solve(here)
        assert point.budgets == tuple(int(b) for b in solved.budgets)
        m = thinkq.model.moments(here, np.array(point.continuous_budgets))
        law = thinkq.batching.delay(here.server, here.rate, m.mean, m.second)
        assert point.mean_batch == pytest.approx(law.batch)
        assert point.mean_system_time == pytest.approx(law.system_time)
        assert point.p95_system_time is not None
    # one slot is the paper's server: today's budgets
    assert result.points[0].budgets == tuple(
        int(b) for b in thinkq.solve(paper.replace(rate=0.5)).budgets
    )
    # more slots carry the same load with less queueing, so the optimum thinks more
    totals = [p.total_budget for p in result.points]
    assert totals[-1] > totals[0]
    assert result.to_dict()["points"][1]["mean_batch"] == pytest.approx(result.points[1].mean_batch)


def test_slots_that_cannot_carry_the_load_are_reported_unstable(paper):
    # rate * E[S(0)] between C(1) = 1 and C(8): one or two slots cannot carry it
    load = float(np.dot(paper.share, paper.t0))
    server = thinkq.batching.Server(slots=8, tau0=0.02, tau1=0.002)
    profile = paper.with_server(server).replace(rate=1.5 / load)
    result = sweep(profile, over="slots", start=1, stop=8, queries=None)
    stable = {p.value: p.stable for p in result.points}
    assert stable == {1: False, 2: True, 4: True, 8: True}
    assert result.points[0].budgets is None


def test_a_slots_sweep_needs_a_step_time_law(paper):
    with pytest.raises(ValueError, match=r"^over: a sweep over slots needs the step-time law"):
        sweep(paper, over="slots", start=1, stop=8)
    with pytest.raises(ValueError, match=r"^start, stop: slots are integers"):
        sweep(paper.with_server(LAW), over="slots", start=1.5, stop=8)


def test_rate_and_alpha_sweeps_have_no_mean_batch(paper):
    result = sweep(paper, over="alpha", start=1.0, stop=10.0, points=3, queries=None)
    assert all("mean_batch" not in point for point in result.to_dict()["points"])
