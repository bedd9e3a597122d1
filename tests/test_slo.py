"""SLO-constrained budgets: parsing objectives, the path along alpha, brute force.

The mean objective is the paper's problem with alpha as the multiplier: the budgets
must be ``thinkq.solve``'s at the reported shadow price, exactly, and no larger alpha
(beyond the relative precision) may meet the objective. On small instances a direct
search over every integer budget vector gives the best accuracy any budgets reach;
the path's answer is compared with it and the gap printed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

import thinkq
from bench_instances import benchmark_profile
from thinkq import model
from thinkq.batching import Server
from thinkq.errors import SloError, ThinkqError
from thinkq.profile import Profile
from thinkq.slo import DEFAULT_RTOL, Objective, parse_objective, parse_objectives, solve_slo
from thinkq.slo.evaluate import Measured, mean_time, resolve
from thinkq.slo.search import AlphaPath, PathPoint, search
from thinkq.tails import system_times

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


# --------------------------------------------------------------------------- percentiles


def best_by_staircase(profile: Profile, holds: Callable[[np.ndarray], bool]) -> np.ndarray:
    """The most accurate integer budgets meeting a monotone objective, by direct search.

    More tokens of any type make every service time longer, so the system time grows
    stochastically: if l meets a percentile objective, so does every l' <= l. For
    fixed leading budgets the best last one is the largest that holds; it only falls
    as the one before it rises (a staircase), so each staircase costs 2 (l_max + 1)
    checks instead of (l_max + 1)^2.
    """
    top = profile.max_tokens
    best, best_accuracy = np.zeros(profile.size, dtype=np.int64), -1.0
    for head in itertools.product(range(top + 1), repeat=profile.size - 2):
        last = top
        for second in range(top + 1):
            while last >= 0 and not holds(np.array([*head, second, last])):
                last -= 1
            if last < 0:
                break
            budgets = np.array([*head, second, last], dtype=np.int64)
            accuracy = model.mean_accuracy(profile, budgets)
            if accuracy > best_accuracy:
                best, best_accuracy = budgets, accuracy
    return best


PERCENTILE_CASES = [(0, 2, 30, 1.5), (1, 2, 30, 2.5), (2, 2, 30, 1.5), (3, 2, 30, 2.5),
                    (1, 3, 8, 1.5), (2, 3, 8, 2.5)]  # fmt: skip


@pytest.mark.parametrize(("seed", "n", "max_tokens", "factor"), PERCENTILE_CASES)
def test_a_percentile_slo_against_a_direct_search(
    seed: int, n: int, max_tokens: int, factor: float
) -> None:
    profile = small_profile(seed, n, max_tokens)
    target = factor * system_times(profile, np.zeros(n)).percentile(95)
    cache: dict[bytes, float] = {}

    def p95(budgets: np.ndarray) -> float:
        key = budgets.astype(np.int64).tobytes()
        if key not in cache:
            stable = np.isfinite(model.system_time(profile, budgets))
            cache[key] = system_times(profile, budgets).percentile(95) if stable else math.inf
        return cache[key]

    best = best_by_staircase(profile, lambda l: p95(l) <= target)
    result = solve_slo(profile, [f"p95<={target!r}s"])
    gap = model.mean_accuracy(profile, best) - result.accuracy
    # one more token of every type: the granularity of integer budgets
    token = float(np.dot(profile.share, profile.A * (1 - np.exp(-profile.b))))
    print(f"seed {seed} N={n} l_max={max_tokens} p95<={target:.3f}s: gap {gap:.2e} "
          f"(one token of each type {token:.2e}); path {result.budgets.tolist()}, "
          f"direct {best.tolist()}")  # fmt: skip
    assert p95(best) <= target  # the direct search's optimum holds
    assert result.achieved[0] == p95(result.budgets) <= target  # and so does the path's
    assert gap >= -1e-12
    assert gap <= token
    assert result.percentile_method == "pk-transform"
    assert result.accuracy_bound is None  # no duality certificate for a percentile


def test_a_percentile_slo_is_the_solve_at_its_shadow_price_and_holds() -> None:
    paper = thinkq.paper_profile()
    result = solve_slo(paper, ["p95<=8s", "GSM8K:p99<=12s"])
    assert result.shadow_price is not None
    again = thinkq.solve(paper.replace(alpha=result.shadow_price))
    assert again.budgets.tolist() == result.budgets.tolist()
    times = system_times(paper, result.budgets)
    k = paper.names.index("GSM8K")
    assert result.achieved == (times.percentile(95), times.percentile(99, k))
    assert all(result.met)
    assert result.next_alpha is not None
    above = system_times(paper, thinkq.solve(paper.replace(alpha=result.next_alpha)).budgets)
    assert above.percentile(95) > 8 or above.percentile(99, k) > 12
    # the binding objective is within 1e-5 of its target or alpha* is pinned to 1e-9
    close = max(v / o.target for v, o in zip(result.achieved, result.objectives, strict=True))
    assert close >= 1 - 1e-5 or result.next_alpha / result.shadow_price - 1 <= 1e-9


def test_a_percentile_that_zero_budgets_miss_names_the_smallest_value() -> None:
    paper = thinkq.paper_profile()
    smallest = system_times(paper, np.zeros(paper.size)).percentile(99)
    with pytest.raises(SloError, match=rf"p99 at zero budgets is {smallest:.4g} s > 0.1 s"):
        solve_slo(paper, ["p99<=100ms"])


def test_on_a_batched_server_percentiles_are_simulated() -> None:
    profile = served(thinkq.paper_profile(), 8)
    result = solve_slo(profile, ["p95<=6s"], queries=20_000, seed=3)
    assert result.percentile_method == "simulation"
    assert result.shadow_price is not None
    again = thinkq.solve(profile.replace(alpha=result.shadow_price))
    assert again.budgets.tolist() == result.budgets.tolist()
    simulated = system_times(profile, result.budgets, queries=20_000, seed=3)
    assert result.achieved[0] == simulated.percentile(95) <= 6.0


class StepPath(AlphaPath):
    """A path whose objectives hold for alpha < 10 and again on [10.05, 20) (a hole of
    half a percent: rounding can make a path non-monotone), accuracy rising with alpha."""

    def __init__(self) -> None:
        super().__init__(
            thinkq.paper_profile(),
            resolve([parse_objective("mean<=1s")], thinkq.paper_profile()),
            lambda p, l: None,
            {},
        )  # type: ignore[arg-type,return-value]

    def at(self, alpha: float) -> PathPoint:
        self.solves += 1
        holds = alpha < 10 or 10.05 <= alpha < 20
        result = SimpleNamespace(accuracy=alpha / (1 + alpha), budgets=np.zeros(6, np.int64))
        measured = Measured((0.5 if holds else 2.0,), holds, None)
        return PathPoint(alpha, result, measured)  # type: ignore[arg-type]


def test_a_feasible_stretch_beyond_a_violation_is_found() -> None:
    lo, hi = search(StepPath(), 10.01, 1e-9)  # starts in the hole
    assert hi is not None
    assert lo.alpha == pytest.approx(20, rel=1e-8)  # not 10: the probes look beyond the hole
    assert hi.alpha / lo.alpha - 1 <= 1e-9


@pytest.mark.parametrize("alpha", [1e-9, 1e6, 1e300])
def test_the_search_starts_anywhere(alpha: float) -> None:
    # the profile's alpha is only where the search starts: far above or below alpha*
    paper = thinkq.paper_profile()
    reference = solve_slo(paper, ["mean<=1.5s"])
    result = solve_slo(paper.replace(alpha=alpha), ["mean<=1.5s"])
    assert result.budgets.tolist() == reference.budgets.tolist()
    assert result.shadow_price == pytest.approx(reference.shadow_price, rel=2e-9)
