"""SLO-constrained budgets: solve times, and the accuracy lost against a direct search.

1. The time of :func:`thinkq.slo.solve_slo` (median of repeats, CPU of this process)
   at N = 6 (the paper's instance) and N = 10^4 (``benchmarks/instances.py``), for a
   mean objective (exact: the Lagrangian path), percentile objectives (the path with
   ``thinkq.tails``), a per-type one and two at once, with the integer solves and
   the budget vectors measured; beside it the same solve with the exact law at every
   point (``screening=False``), its alpha* and whether both give the same budgets
   and percentiles; then ``thinkq frontier``'s trace (30 points).
   Goals of issue 16: under 20 ms at N = 6, under 1 s at N = 10^4.
2. The accuracy the path leaves against a direct search over every integer budget
   vector on small instances (N = 2 with l_max = 30, N = 3 with l_max = 8; steep
   curves, so that a token matters): for the mean and for p95 targets 1.5, 2.5 and
   4 times their value at zero budgets. For the mean, the duality bound beside it.

3. With ``--screen-check SEEDS``: the screen's rule (``thinkq.slo.screen``) against
   the exact law on random instances, F(t) at random times with q drawn close to
   the exact F(t): how often a margin would decide wrongly.

    python benchmarks/slo.py [--markdown FILE] [--screen-check SEEDS]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import thinkq
from thinkq import Profile, model
from thinkq.slo import solve_slo
from thinkq.slo.frontier import frontier
from thinkq.slo.times import tails
from thinkq.tails import system_times

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import benchmark_profile


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def timing(out: list[str]) -> None:
    """Solve times at N = 6 and N = 10^4, and the frontier's."""
    paper, big = thinkq.paper_profile(), benchmark_profile(10_000)
    cases = [
        (paper, "mean<=2s", 30), (paper, "p95<=8s", 30), (paper, "p99<=15s", 30),
        (paper, "GSM8K:p95<=10s", 30), (paper, "mean<=2s, p99<=10s", 30),
        (big, "mean<=2.5s", 5), (big, "p95<=8s", 5), (big, "task0:p99<=10s", 5),
        (big, "mean<=2.5s, p99<=9s", 5),
    ]  # fmt: skip
    out += ["| N | objectives | time (ms) | solves | evaluations | alpha* "
            "| exact law everywhere (ms) | its alpha* | same budgets |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for profile, text, repeats in cases:
        objectives = [t.strip() for t in text.split(",")]
        result = solve_slo(profile, objectives)
        plain = solve_slo(profile, objectives, screening=False)
        ms = _median_ms(lambda p=profile, o=objectives: solve_slo(p, o), repeats)  # type: ignore[misc]
        plain_ms = _median_ms(
            lambda p=profile, o=objectives: solve_slo(p, o, screening=False),  # type: ignore[misc]
            repeats,
        )
        same = result.budgets.tolist() == plain.budgets.tolist()
        same = same and result.achieved == plain.achieved
        out.append(f"| {profile.size:,} | `{text}` | {ms:.1f} | {result.solves} | "
                   f"{result.evaluations} | {result.shadow_price:.10g} | {plain_ms:.1f} | "
                   f"{plain.shadow_price:.10g} | {'yes' if same else 'NO'} |")  # fmt: skip
        print(out[-1])
    out += ["", "| N | frontier, 30 points (ms) |", "|---:|---:|"]
    for profile, repeats in ((paper, 5), (big, 1)):
        ms = _median_ms(lambda p=profile: frontier(p, times=tails()), repeats)  # type: ignore[misc]
        out.append(f"| {profile.size:,} | {ms:.0f} |")
        print(out[-1])


def small_profile(seed: int, n: int, max_tokens: int) -> Profile:
    """The small instances of ``tests/test_slo.py``: steep curves, slow tokens, load
    0.3 at zero budgets."""
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.2, 0.6, n)
    unit = Profile.from_arrays(
        names=[f"t{k}" for k in range(n)], share=rng.uniform(0.5, 2.0, n), A=A,
        b=rng.uniform(0.1, 0.5, n), D=rng.uniform(0, 1 - A), t0=rng.uniform(0.2, 1.0, n),
        c=rng.uniform(0.02, 0.1, n), rate=1.0, alpha=10.0, max_tokens=max_tokens,
    )  # fmt: skip
    return unit.replace(rate=0.3 / model.moments(unit, np.zeros(n)).mean)


def _best(profile: Profile, value: Callable[[np.ndarray], float], target: float) -> float:
    """The best accuracy of any integer budgets with value <= target (every vector)."""
    best = -1.0
    levels = range(profile.max_tokens + 1)
    for budgets in itertools.product(levels, repeat=profile.size):
        l = np.array(budgets)
        accuracy = model.mean_accuracy(profile, l)
        if accuracy > best and value(l) <= target:
            best = accuracy
    return best


def gaps(out: list[str]) -> None:
    """The accuracy the path leaves against the direct search."""

    def p95(profile: Profile) -> Callable[[np.ndarray], float]:
        def value(l: np.ndarray) -> float:
            if not np.isfinite(model.system_time(profile, l)):
                return float("inf")
            return system_times(profile, l).percentile(95)

        return value

    out += ["", "| objective | instances | largest gap | median gap | largest duality bound |",
            "|---|---:|---:|---:|---:|"]  # fmt: skip
    for kind in ("mean", "p95"):
        found, bounds = [], []
        for seed, (n, lmax) in itertools.product(range(4), ((2, 30), (3, 8))):
            profile = small_profile(seed, n, lmax)
            value = (
                (lambda l, p=profile: model.system_time(p, l)) if kind == "mean" else p95(profile)
            )
            zero = value(np.zeros(n, dtype=np.int64))
            for factor in (1.5, 2.5, 4.0):
                target = factor * zero
                result = solve_slo(profile, [f"{kind}<={target!r}s"])
                found.append(_best(profile, value, target) - result.accuracy)
                if result.accuracy_bound is not None:
                    bounds.append(result.accuracy_bound - result.accuracy)
        largest_bound = f"{max(bounds):.2e}" if bounds else "n/a"
        out.append(f"| {kind} | {len(found)} | {max(found):.2e} | "
                   f"{statistics.median(found):.2e} | {largest_bound} |")  # fmt: skip
        print(out[-1])


def screen_check(seeds: range, out: list[str]) -> None:
    """The screen's rule (docs/slo.md) against the exact law: F at random times of
    random instances, q drawn close to the exact F(t); wrong decisions per margin."""
    from thinkq.simulate import Lognormal
    from thinkq.tails.exact import ExactLaw
    from thinkq.tails.service import mixture
    from thinkq.tails.waiting import waiting_time

    rng = np.random.default_rng(seeds.start)
    rules = [(4.0, 1e-6), (8.0, 2e-6), (4.0, 1e-7)]
    wrong, undecided, total = dict.fromkeys(rules, 0), dict.fromkeys(rules, 0), 0
    for seed in seeds:
        n = int(rng.integers(2, 7))
        base = small_profile(seed, n, int(rng.choice([60, 200, 2000])))
        for rho in (0.05, 0.3, 0.7, 0.95):
            l = rng.integers(0, base.max_tokens + 1, n).astype(float)
            profile = base.replace(rate=rho / model.moments(base, l).mean)
            answers = None
            if seed % 2:
                answers = [
                    Lognormal(float(t), cv=float(rng.uniform(0.05, 1.5))) for t in profile.t0
                ]
            mix = mixture(profile, l, answers)
            law = {r: ExactLaw(mix, waiting_time(mix, profile.rate, resolution=r))
                   for r in (128, 256, 1024)}  # fmt: skip
            t = rng.uniform(0, law[1024].quantiles(np.array([0.9999]), None)[0], 3000)
            k = rng.integers(0, n, t.size)
            for per_type in (False, True):
                rough, fine, exact = (
                    law[r].type_cdf(t, k) if per_type else law[r].overall_cdf(t)
                    for r in (128, 256, 1024)
                )
                q = exact + rng.normal(0, 1, t.size) * 10 ** rng.uniform(-7, -3, t.size)
                for factor, floor in rules:
                    margin = np.maximum(factor * np.abs(rough - fine), floor)
                    decided = np.abs(fine - q) > margin
                    undecided[factor, floor] += int(np.sum(~decided))
                    wrong[factor, floor] += int(np.sum(decided & ((fine >= q) != (exact >= q))))
                total += t.size
    out += ["", "| screen rule (factor, floor) | pairs | wrong | left to the exact law |",
            "|---|---:|---:|---:|"]  # fmt: skip
    for rule in rules:
        out.append(f"| {rule} | {total:,} | {wrong[rule]} | {undecided[rule]:,} |")
        print(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--screen-check", type=int, default=0, metavar="SEEDS",
                        help="also check the screen's rule on this many random instances "
                             "(40: 960,000 pairs, about 5 minutes)")  # fmt: skip
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [f"{machine}, Python {platform.python_version()}, load average {load}", ""]
    print(out[0])
    timing(out)
    gaps(out)
    if args.screen_check:
        screen_check(range(200, 200 + args.screen_check), out)
    if args.markdown:
        args.markdown.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
