"""Capacity planning (``thinkq.plan``, ``thinkq plan``): issue 16's acceptance.

"``thinkq plan`` agrees with simulation of the planned replica count (the SLO holds in
simulation at the planned count and fails at one fewer, where the answer is not at a
boundary)". Each replica is the profile's server at rate / c (requests split at
random), so one replica is simulated at rate / c and at rate / (c - 1).

The budgets the plan deploys make the SLO bind (the most accurate budgets within
it), so in simulation they sit at the target up to noise. What decides the count is
the other end of the same path: the least-latency budgets that reach the accuracy
floor (zero budgets without one). Those meet the SLO with room at c replicas and miss
it by a clear margin at c - 1; the tests check both margins analytically (at least
2 % of the target) and in simulation (well outside the simulated percentile's
uncertainty, from eight seeds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from thinkq import cli, paper_profile, simulate
from thinkq.batching import Server
from thinkq.errors import SloError
from thinkq.plan import CapacityPlan, plan_capacity
from thinkq.profile import Profile
from thinkq.slo import solve_slo

#: Seeds and measured queries per seed of each simulated percentile.
SEEDS, QUERIES = 8, 400_000
#: The analytic margin (relative to the target) that makes an answer "not at a boundary".
MARGIN = 0.02
#: The simulator's percentiles come from log-spaced bins: 0.27 % relative resolution.
RESOLUTION = 0.003


def lognormal_paper() -> Profile:
    """The paper's instance with lognormal answer times (coefficient of variation 1)."""
    p = paper_profile()
    return p.with_variance(np.asarray(p.t0) ** 2)


# name -> (profile, total rate, objective, its percentile, accuracy floor)
INSTANCES: dict[str, tuple[Profile, float, str, float, float | None]] = {
    "paper, p95<=8s, accuracy >= 0.39": (paper_profile(), 1.0, "p95<=8s", 95.0, 0.39),
    "lognormal, p95<=1s": (lognormal_paper(), 12.0, "p95<=1s", 95.0, None),
}


@pytest.fixture(scope="module", params=sorted(INSTANCES))
def planned(request: pytest.FixtureRequest) -> tuple[str, CapacityPlan, Profile]:
    profile, rate, slo, _, floor = INSTANCES[request.param]
    return request.param, plan_capacity(profile, rate, [slo], min_accuracy=floor), profile


def simulated(profile: Profile, rate: float, budgets: Any, q: float) -> tuple[float, float]:
    """The q-th percentile of the system time over SEEDS runs: mean and standard error."""
    served = profile.replace(rate=rate)
    runs = [simulate(served, budgets, queries=QUERIES, seed=seed) for seed in range(SEEDS)]
    values = np.array([getattr(s, f"p{q:g}_system_time") for s in runs])
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(SEEDS))


def test_the_planned_count_holds_in_simulation_and_one_fewer_fails(
    planned: tuple[str, CapacityPlan, Profile],
) -> None:
    name, plan, profile = planned
    _, rate, _, q, floor = INSTANCES[name]
    target = plan.objectives[0].target
    c = plan.replicas
    assert c >= 2  # one fewer is a real count
    assert rate / c < plan.max_rate < rate / (c - 1)  # a few times one replica's capacity
    assert rate / plan.max_rate > 2
    at, fewer = plan.answer, next(r for r in plan.rows if r.replicas == c - 1)
    assert at.feasible
    assert not fewer.feasible
    assert at.lean_budgets is not None
    assert fewer.lean_budgets is not None
    assert at.lean_achieved is not None
    assert fewer.lean_achieved is not None
    assert at.lean_accuracy is not None
    assert at.lean_accuracy >= (floor or 0.0)
    # not at a boundary: the deciding budgets clear the target by a real margin, both ways
    assert at.lean_achieved[0] <= target * (1 - MARGIN)
    assert fewer.lean_achieved[0] >= target * (1 + MARGIN)
    # ... and so they do in simulation, far outside its uncertainty
    holds, se_holds = simulated(profile, rate / c, at.lean_budgets, q)
    fails, se_fails = simulated(profile, rate / (c - 1), fewer.lean_budgets, q)
    noise = lambda se: 5 * se + RESOLUTION * target  # noqa: E731
    print(f"\n{name}: c = {c}; simulated p{q:g} at c: {holds:.4f} +- {se_holds:.4f} s "
          f"(exact {at.lean_achieved[0]:.4f}), at c - 1: {fails:.4f} +- {se_fails:.4f} s "
          f"(exact {fewer.lean_achieved[0]:.4f}); target {target:g} s")  # fmt: skip
    assert holds + noise(se_holds) < target
    assert fails - noise(se_fails) > target
    assert abs(holds - at.lean_achieved[0]) < noise(se_holds)
    # the budgets the plan deploys bind: in simulation at the target, up to noise; on
    # one fewer replica they miss it by far
    best, se_best = simulated(profile, rate / c, at.replica.budgets, q)
    over, se_over = simulated(profile, rate / (c - 1), at.replica.budgets, q)
    print(f"planned budgets: p{q:g} {best:.4f} +- {se_best:.4f} s at c "
          f"(exact {at.replica.achieved[0]:.4f}), {over:.4f} s at c - 1")  # fmt: skip
    assert at.replica.achieved[0] <= target
    assert abs(best - at.replica.achieved[0]) < noise(se_best)
    assert over - noise(se_over) > target * (1 + MARGIN)


def test_one_replica_carries_the_max_rate_and_not_one_percent_more(
    planned: tuple[str, CapacityPlan, Profile],
) -> None:
    name, plan, profile = planned
    _, _, slo, _, floor = INSTANCES[name]
    at = solve_slo(profile.replace(rate=plan.max_rate), [slo])
    assert all(at.met)
    assert at.accuracy >= (floor or 0.0)
    assert plan.capacity.rate == plan.max_rate
    assert plan.capacity.feasible
    try:
        over = solve_slo(profile.replace(rate=1.01 * plan.max_rate), [slo])
    except SloError:
        assert floor is None  # zero budgets miss it: the floor plays no part
    else:
        assert floor is not None
        assert over.accuracy < floor


def test_rows_surround_the_answer_and_feasibility_is_monotone(
    planned: tuple[str, CapacityPlan, Profile],
) -> None:
    _, plan, _ = planned
    counts = [row.replicas for row in plan.rows]
    assert counts == list(range(max(1, plan.replicas - 2), plan.replicas + 3))
    assert [row.feasible for row in plan.rows] == [c >= plan.replicas for c in counts]
    accuracies = [row.replica.accuracy for row in plan.rows if row.replica.slo is not None]
    assert accuracies == sorted(accuracies)  # fewer arrivals per replica: more accuracy
    for row in plan.rows:
        slo = row.replica.slo
        if slo is not None:
            assert row.utilization == pytest.approx(slo.solution.utilization, rel=1e-12)
            assert row.mean == pytest.approx(slo.solution.mean_system_time, rel=1e-12)
        if row.replica.reason == "unstable":  # even zero budgets: rho >= 1
            assert row.utilization >= 1
            assert math.isinf(row.mean)


def test_the_count_is_the_rate_over_what_one_replica_carries(
    planned: tuple[str, CapacityPlan, Profile],
) -> None:
    name, plan, _ = planned
    rate = INSTANCES[name][1]
    # feasibility is monotone in the rate per replica: c carries it iff rate / c <= max
    assert plan.replicas == math.ceil(rate / plan.max_rate)


def test_a_batched_server_is_planned_per_replica_too() -> None:
    server = Server(slots=4, tau0=0.012, tau1=0.004)
    profile = paper_profile().with_server(server)
    plan = plan_capacity(profile, 3.0, ["p95<=8s"], min_accuracy=0.39, queries=2000)
    assert plan.percentile_method == "simulation"
    assert [row.feasible for row in plan.rows] == [r.replicas >= plan.replicas for r in plan.rows]
    assert plan.replicas == math.ceil(3.0 / plan.max_rate)
    # more slots carry more: the same objectives on one slot need more replicas
    alone = plan_capacity(paper_profile(), 3.0, ["p95<=8s"], min_accuracy=0.39)
    assert alone.replicas > plan.replicas


def test_a_small_rate_needs_one_replica_and_the_rows_start_at_one() -> None:
    plan = plan_capacity(paper_profile(), 0.01, ["mean<=3s"])
    assert plan.replicas == 1
    assert [row.replicas for row in plan.rows] == [1, 2, 3]
    assert plan.exact
    assert plan.percentile_method is None
    assert plan.max_rate > 0.01


def test_an_slo_that_the_service_time_alone_misses_names_the_smallest_value() -> None:
    p = paper_profile()
    with pytest.raises(SloError, match="not met at any replica count") as caught:
        plan_capacity(p, 1.0, ["p95<=0.1s"])
    # at almost zero load the system time is the service time: p95 is the largest t0
    assert caught.value.smallest == pytest.approx(float(np.max(p.t0)), rel=1e-6)
    with pytest.raises(SloError, match=r"min_accuracy: 0\.99 is more than any budgets reach"):
        plan_capacity(p, 1.0, ["p95<=8s"], min_accuracy=0.99)
    with pytest.raises(SloError, match="more than 4 replicas needed"):
        plan_capacity(p, 100.0, ["p95<=8s"], max_replicas=4)
    with pytest.raises(SloError, match=r"the best accuracy within the SLO is 0\.31\d+ < 0\.42"):
        plan_capacity(p, 10.0, ["p95<=8s"], min_accuracy=0.42, max_replicas=8)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rate": 0.0}, "rate"),
        ({"rate": -1.0}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"min_accuracy": -0.1}, "min_accuracy"),
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"min_accuracy": math.nan}, "min_accuracy"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"queries": 10}, "queries"),
        ({"objectives": ["p95<8s"]}, "slo"),
        ({"objectives": []}, "slo"),
    ],
)
def test_bad_arguments_are_value_errors_naming_the_field(options: dict[str, Any], field: str):
    arguments: dict[str, Any] = {"rate": 1.0, "objectives": ["p95<=8s"]} | options
    with pytest.raises(ValueError, match=f"^{field}: "):
        plan_capacity(paper_profile(), **arguments)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "80")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, ["plan", *(str(a) for a in args)], prog_name="thinkq")


def test_the_command_prints_the_table_and_one_line_summary() -> None:
    result = run("--rate", "3", "--slo", "mean<=3s", "--min-accuracy", "0.35")
    assert result.exit_code == 0, result.stderr
    assert "5 replicas carry 3 queries/s at mean<=3s with accuracy >= 0.35; one replica " in (
        " ".join(result.stdout.split())
    )
    assert "Per replica (requests split at random)" in result.stdout
    assert max(len(line.rstrip()) for line in result.stdout.splitlines()) <= 80


def test_json_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    result = run("--rate", "3", "--slo", "mean<=3s", "--min-accuracy", "0.35", "--json",
                 "--plot", png)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "thinkq-plan/1"
    assert data["replicas"] == 5
    assert data["rate"] == 3.0
    assert data["min_accuracy"] == 0.35
    assert data["objectives"] == [
        {"objective": "mean<=3s", "statistic": "mean", "task": None, "target": 3.0}
    ]
    assert data["exact"] is True
    assert data["routing"].startswith("random split")
    assert 3.0 / 5 < data["max_rate_per_replica"] < 3.0 / 4
    assert data["capacity"]["rate"] == data["max_rate_per_replica"]
    assert data["summary"].startswith("5 replicas carry 3 queries/s")
    rows = data["rows"]
    assert [r["replicas"] for r in rows] == [3, 4, 5, 6, 7]
    assert [r["feasible"] for r in rows] == [False, False, True, True, True]
    for row in rows:
        assert set(row) >= {"rate_per_replica", "budgets", "accuracy", "achieved", "shadow_price",
                            "utilization", "mean_system_time", "p95_system_time",
                            "p99_system_time", "reason", "lean"}  # fmt: skip
        assert list(row["budgets"]) == list(paper_profile().names)
        assert row["rate_per_replica"] == pytest.approx(3.0 / row["replicas"])
        assert row["p95_system_time"] < row["p99_system_time"]
    assert rows[2]["achieved"][0] <= 3.0 < rows[1]["lean"]["achieved"][0]
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {png}" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "1", "--slo", "p95<=0.1s"], "option --slo: 'p95<=0.1s': not met at any"),
        (["--rate", "0", "--slo", "p95<=8s"], "option --rate: expected a positive"),
        (["--rate", "-2", "--slo", "p95<=8s"], "option --rate: expected a positive"),
        (["--rate", "nan", "--slo", "p95<=8s"], "option --rate: expected a positive"),
        (["--rate", "1", "--slo", "p95<=8s", "--min-accuracy", "2"], "option --min-accuracy:"),
        (["--rate", "1", "--slo", "p95<=8s", "--min-accuracy", "0.99"], "option --min-accuracy:"),
        (["--rate", "1", "--slo", "p95<8s"], "option --slo: 'p95<8s': expected"),
        (["--rate", "1", "--slo", "p100<=8s"], "option --slo: 'p100<=8s': the percentile"),
        (["--rate", "1", "--slo", "x:p95<=8s"], "option --slo: 'x:p95<=8s': task 'x'"),
        (["--rate", "1"], "option --slo: give at least one objective"),
        (["--slo", "p95<=8s"], "option --rate: give the total arrival rate"),
        (["--rate", "1", "--slo", "p95<=8s", "--plot", "x.txt"], "option --plot:"),
        (["--rate", "1", "--slo", "p95<=8s", "--queries", "10"], "option --queries:"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(args: list[str], message: str, tmp_path: Path):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_plot_that_cannot_be_written_is_an_error_and_nothing_is_left(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    result = run("--rate", "1", "--slo", "mean<=3s", "--plot", folder / "plan.png")
    assert result.exit_code == 2
    assert "option --plot:" in result.stderr
    assert not folder.exists()
