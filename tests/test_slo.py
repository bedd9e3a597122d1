"""SLO-constrained budgets: parsing objectives, the path along alpha, brute force.

The mean objective is the paper's problem with alpha as the multiplier: the budgets
must be ``thinkq.solve``'s at the reported shadow price, exactly, and no larger alpha
(beyond the relative precision) may meet the objective. On small instances a direct
search over every integer budget vector gives the best accuracy any budgets reach;
the path's answer is compared with it and the gap printed.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import thinkq
from thinkq import model
from thinkq.batching import Server
from thinkq.errors import SloError, ThinkqError
from thinkq.profile import Profile
from thinkq.slo import DEFAULT_RTOL, Objective, parse_objective, parse_objectives, solve_slo
from thinkq.slo.evaluate import mean_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from instances import benchmark_profile

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "percentile", "target", "task"),
    [
        ("mean<=2s", None, 2.0, None),
        ("p95<=8s", 95.0, 8.0, None),
        ("p99<=15s", 99.0, 15.0, None),
        ("p99.9<=20s", 99.9, 20.0, None),
        ("p95<=800ms", 95.0, 0.8, None),
        ("mean<=1.5min", None, 90.0, None),
        ("gsm8k:p95<=10s", 95.0, 10.0, "gsm8k"),
        (" P95 <= 8 S ", 95.0, 8.0, None),
        ("bbh/boolean expressions: mean<=3s", None, 3.0, "bbh/boolean expressions"),
        ("a:b:p50<=1e3ms", 50.0, 1.0, "a:b"),
    ],
)
def test_objectives_parse(text: str, percentile: float | None, target: float, task: str) -> None:
    o = parse_objective(text)
    assert (o.percentile, o.task, o.text) == (percentile, task, text)
    assert o.target == pytest.approx(target, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("p95<=8", "no unit"),
        ("p95<=8m", "ambiguous"),
        ("p95<=8kg", "unknown unit 'kg'"),
        ("p0<=1s", "strictly between 0 and 100, got 0"),
        ("p100<=1s", "strictly between 0 and 100, got 100"),
        ("p-5<=1s", "strictly between 0 and 100, got -5"),
        ("p250<=1s", "strictly between 0 and 100"),
        ("pnan<=1s", "strictly between 0 and 100"),
        ("p95<=0s", "positive, finite"),
        ("p95<=-2s", "positive, finite"),
        ("p95<=nans", "positive, finite"),
        ("p95<=infs", "positive, finite"),
        ("p95<=1e999s", "positive, finite"),
        ("p95<=1e-400s", "positive, finite"),
        ("p95<=s", "no target"),
        ("p95<8s", "expected [TASK:]mean<=T"),
        ("p95>=8s", "expected [TASK:]mean<=T"),
        ("median<=8s", "expected [TASK:]mean<=T"),
        ("", "expected [TASK:]mean<=T"),
        (":p95<=8s", "task name before ':' is empty"),
    ],
)
def test_malformed_objectives_are_one_line_value_errors(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^slo: ") as caught:
        parse_objective(text)
    message = str(caught.value)
    assert problem in message
    assert repr(text) in message
    assert "\n" not in message


def test_objectives_print_in_seconds_and_need_at_least_one() -> None:
    assert str(parse_objective("gsm8k:p99.9<=1500ms")) == "gsm8k:p99.9<=1.5s"
    assert parse_objective("mean<=2s").exact
    assert not parse_objective("p95<=2s").exact
    assert not parse_objective("x:mean<=2s").exact
    with pytest.raises(ValueError, match="at least one"):
        parse_objectives([])
    given = Objective(95.0, 8.0)
    assert parse_objectives([given, "mean<=2s"])[0] is given


def test_an_unknown_task_names_the_known_ones() -> None:
    paper = thinkq.paper_profile()
    with pytest.raises(ValueError, match=r"task 'mmlu' is not a task.*AIME, GSM8K, GPQA"):
        solve_slo(paper, ["mmlu:mean<=2s"])
    result = solve_slo(paper, ["gsm8k:mean<=2s"])  # case-insensitive when unambiguous
    assert result.achieved[0] <= 2.0


# --------------------------------------------------------------------------- the mean


def served(profile: Profile, slots: int) -> Profile:
    return profile.with_server(Server(slots, 0.02, 0.002)).replace(rate=1.0)


PROFILES: dict[str, Callable[[], Profile]] = {
    "paper": thinkq.paper_profile,
    "paper-rate-0.05": lambda: thinkq.paper_profile().replace(rate=0.05),
    "paper-lmax-400": lambda: thinkq.paper_profile().replace(max_tokens=400),
    "random-40": lambda: benchmark_profile(40),
    "stress-12": lambda: benchmark_profile(12, stress=True),
    "batched-8": lambda: served(thinkq.paper_profile(), 8),
}


def _between(profile: Profile, fraction: float) -> float:
    """A mean target between zero budgets and the profile's own optimum."""
    low = model.system_time(profile, np.zeros(profile.size))
    high = thinkq.solve(profile).mean_system_time
    return low + fraction * (high - low) + 1e-9


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("fraction", [0.3, 0.9, 2.5])
def test_the_mean_slo_is_the_unconstrained_solve_at_the_shadow_price(
    name: str, fraction: float
) -> None:
    profile = PROFILES[name]()
    target = _between(profile, fraction)
    result = solve_slo(profile, [f"mean<={target!r}s"])
    assert result.binding
    assert result.shadow_price is not None
    again = thinkq.solve(profile.replace(alpha=result.shadow_price))
    assert again.budgets.tolist() == result.budgets.tolist()
    assert result.alpha == result.shadow_price
    assert result.achieved[0] == again.mean_system_time <= target
    # the largest such alpha: the next one tried fails, within the precision
    assert result.next_alpha is not None
    assert result.next_alpha / result.shadow_price - 1 <= DEFAULT_RTOL
    assert thinkq.solve(profile.replace(alpha=result.next_alpha)).mean_system_time > target
    assert result.accuracy_per_second == pytest.approx(1 / result.shadow_price)
    if profile.batched is None:  # the duality certificate (P-K: J concave)
        assert result.accuracy_bound is not None
        assert result.accuracy <= result.accuracy_bound < result.accuracy + 2e-3
    else:
        assert result.accuracy_bound is None


def test_a_looser_mean_buys_more_accuracy_at_a_higher_price() -> None:
    paper = thinkq.paper_profile()
    results = [solve_slo(paper, [f"mean<={t}s"]) for t in (1.5, 2.0, 3.0, 10.0)]
    prices = [r.shadow_price for r in results]
    accuracies = [r.accuracy for r in results]
    assert prices == sorted(prices)
    assert accuracies == sorted(accuracies)
    # the profile's own alpha (30) gives a mean of 2.18 s: the SLO replaces alpha
    assert results[0].shadow_price < 30 < results[2].shadow_price  # type: ignore[operator]


def test_an_slo_that_allows_every_token_does_not_bind() -> None:
    small = thinkq.paper_profile().replace(max_tokens=64)
    at_max = model.system_time(small, np.full(small.size, 64))
    result = solve_slo(small, [f"mean<={at_max * 1.01}s"])
    assert not result.binding
    assert result.shadow_price is None
    assert result.accuracy_per_second is None
    assert result.budgets.tolist() == [64] * small.size
    again = thinkq.solve(small.replace(alpha=result.alpha))
    assert result.budgets.tolist() == again.budgets.tolist()
    assert result.to_dict()["shadow_price"] is None


def test_an_slo_that_zero_budgets_miss_names_the_smallest_value() -> None:
    paper = thinkq.paper_profile()
    smallest = model.system_time(paper, np.zeros(paper.size))
    with pytest.raises(SloError) as caught:
        solve_slo(paper, ["mean<=10s", "mean<=0.1s"])
    error = caught.value
    assert isinstance(error, ThinkqError)
    assert isinstance(error, ValueError)
    assert str(error) == (
        f"slo: 'mean<=0.1s': mean at zero budgets is {smallest:.4g} s > 0.1 s; no budgets meet it"
    )
    assert (error.objective, error.smallest) == ("mean<=0.1s", smallest)


def test_per_task_means_hold_and_every_objective_holds_at_once() -> None:
    paper = thinkq.paper_profile()
    result = solve_slo(paper, ["mean<=3s", "GSM8K:mean<=2s"])
    k = paper.names.index("GSM8K")
    assert result.achieved[1] == mean_time(paper, result.budgets, k) <= 2.0
    assert result.achieved[0] <= 3.0
    assert all(result.met)
    assert not result.exact
    assert result.accuracy_bound is None
    alone = solve_slo(paper, ["GSM8K:mean<=2s"])
    assert alone.budgets.tolist() == result.budgets.tolist()  # the binding one decides


def test_bad_rtol_and_solver_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^rtol:"):
        solve_slo(thinkq.paper_profile(), ["mean<=2s"], rtol=0.0)
    with pytest.raises(ValueError, match=r"^method:"):
        solve_slo(thinkq.paper_profile(), ["mean<=2s"], method="simplex")


# --------------------------------------------------------------------------- brute force


def small_profile(seed: int, n: int, max_tokens: int) -> Profile:
    """N types whose budgets of a few tokens matter: steep curves, slow tokens."""
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.2, 0.6, n)
    unit = Profile.from_arrays(
        names=[f"t{k}" for k in range(n)],
        share=rng.uniform(0.5, 2.0, n),
        A=A,
        b=rng.uniform(0.1, 0.5, n),
        D=rng.uniform(0, 1 - A),
        t0=rng.uniform(0.2, 1.0, n),
        c=rng.uniform(0.02, 0.1, n),
        rate=1.0,
        alpha=10.0,
        max_tokens=max_tokens,
    )
    return unit.replace(rate=0.3 / model.moments(unit, np.zeros(n)).mean)  # rho(0) = 0.3


def every_budget(profile: Profile) -> np.ndarray:
    levels = range(profile.max_tokens + 1)
    return np.array(list(itertools.product(levels, repeat=profile.size)), dtype=np.int64)


BRUTE = [(seed, n, lmax) for seed in range(4) for n, lmax in ((2, 30), (3, 12))]


@pytest.mark.parametrize(("seed", "n", "max_tokens"), BRUTE)
def test_the_mean_slo_against_every_budget_vector(seed: int, n: int, max_tokens: int) -> None:
    profile = small_profile(seed, n, max_tokens)
    grid = every_budget(profile)
    accuracy = np.array([model.mean_accuracy(profile, l) for l in grid])
    mean = np.array([model.system_time(profile, l) for l in grid])
    for factor in (1.5, 2.5, 4.0):
        target = float(mean.min() * factor)
        result = solve_slo(profile, [f"mean<={target!r}s"])
        best = float(accuracy[mean <= target].max())
        gap = best - result.accuracy
        bound = None if result.accuracy_bound is None else result.accuracy_bound - result.accuracy
        print(f"seed {seed} N={n} l_max={max_tokens} mean<={target:.3f}s: ", end="")
        print(f"gap {gap:.2e}, certificate {bound}")
        assert result.achieved[0] <= target
        assert gap >= -1e-12  # nothing beats the direct search
        if not result.binding:  # l_max everywhere meets it
            assert result.budgets.tolist() == [max_tokens] * n
            assert gap == 0
            continue
        # the duality bound covers every integer vector, so it covers the gap
        assert result.accuracy_bound is not None
        assert best <= result.accuracy_bound + 1e-12
        assert gap <= result.accuracy_bound - result.accuracy + 1e-12
