"""Percentiles of the system time: thinkq.tails against exact sample quantiles.

For four service mixtures and utilisations 0.2 to 0.95, the p50, p95 and p99 of the
system time (overall and per type) from :func:`thinkq.tails.system_times` (the
Pollaczek-Khinchine transform inverted on a lattice) against the exact sample
quantiles of a FIFO M/G/1 simulation of ``--queries`` queries (default 10^7; a
per-query Lindley recursion compiled with numba, the first 5% discarded). At
utilisation 0.8 and above one run's percentiles are noisier than the 1% sought (the
busy periods are long), so there the comparison is with the mean of ``--runs``
independent runs (default 20; 100 at 0.95), and the error against the first run
alone is shown too. Beside each error, the simulation's own 95% half-width for the overall p99
(sectioning into 20 batches for one run, Student t over the runs otherwise), so an
error can be read against the noise, and the largest change of the overall
percentiles on a lattice four times finer (the lattice's own error, which the
simulation cannot resolve).

The mixtures:

* ``paper``: the paper's six types at their optimal integer budgets, deterministic;
* ``lognormal cv 0.5`` and ``lognormal cv 1.5``: four types whose answer time
  dominates (t0 = 0.5, 1, 2, 4 s, shares 0.4, 0.3, 0.2, 0.1, 0 to 200 thinking
  tokens at 10 ms), lognormal answer times with that coefficient of variation;
* ``t0 0.01-10 s``: four deterministic types with t0 = 0.01, 0.1, 1 and 10 s (shares
  0.4, 0.3, 0.2, 0.1): three decades between the shortest and the longest.

Then the time to compute a percentile: from the profile to the p99 (build the law,
then one percentile) and one more percentile from the built law, median over
repeats, at N = 6 (the paper's instance) and N = 10^4 (``benchmarks/instances.py``,
deterministic and with lognormal answer times of cv 0.5), and the time to solve under
an SLO at both sizes (``benchmarks/slo.py``, which also measures the accuracy the SLO
search leaves against a direct search).

    python benchmarks/tails.py [--queries N] [--runs R] [--seed S] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from scipy import stats

import thinkq
from thinkq import Profile, Task
from thinkq.tails import system_times
from thinkq.tails.exact import ExactLaw
from thinkq.tails.service import mixture
from thinkq.tails.waiting import MAX_NODES, RESOLUTION, waiting_time

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import benchmark_profile
from slo import timing as slo_timing

LOADS = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)  # not 0.5: W's atom 1 - rho would equal p50
PERCENTILES = (50.0, 95.0, 99.0)
BATCHES = 20


@numba.njit(cache=True)
def _system_times(gaps: np.ndarray, service: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Lindley's recursion one query at a time: W_n = max(0, W_{n-1} + S_{n-1} - A_n)."""
    out = np.empty(gaps.size)
    wait = 0.0
    for n in range(gaps.size):
        if n > 0:
            wait = max(0.0, wait + service[n - 1] - gaps[n])
        out[n] = wait + service[n]
    return out


def _four(
    t0: tuple[float, ...], cv: float, tokens: tuple[float, ...]
) -> tuple[Profile, np.ndarray]:
    shares = (0.4, 0.3, 0.2, 0.1)
    tasks = [
        Task(name=f"q{k}", share=w, A=0.5, b=1e-2, D=0.1, t0=t, c=0.01, variance=(cv * t) ** 2)
        for k, (w, t) in enumerate(zip(shares, t0, strict=True))
    ]
    profile = Profile.from_tasks(tasks, rate=0.01, alpha=10.0, max_tokens=1000)
    return profile, np.array(tokens)


def mixtures() -> dict[str, tuple[Profile, np.ndarray]]:
    paper = thinkq.paper_profile()
    return {
        "paper": (paper, np.asarray(thinkq.solve(paper).budgets, dtype=float)),
        "lognormal cv 0.5": _four((0.5, 1.0, 2.0, 4.0), 0.5, (0, 50, 100, 200)),
        "lognormal cv 1.5": _four((0.5, 1.0, 2.0, 4.0), 1.5, (0, 50, 100, 200)),
        "t0 0.01-10 s": _four((0.01, 0.1, 1.0, 10.0), 0.0, (0, 0, 0, 0)),
    }


def simulate(profile: Profile, budgets: np.ndarray, queries: int, seed: int):
    """Exact system times and types of ``queries`` measured queries (after 5% warm-up)."""
    rng = np.random.default_rng(seed)
    total = queries + queries // 20
    gaps = rng.exponential(1.0 / profile.rate, total)
    types = np.searchsorted(np.cumsum(profile.share), rng.random(total), side="right")
    types = np.minimum(types, profile.size - 1)
    service = (profile.c * budgets)[types] + profile.t0[types]
    for k in range(profile.size):
        if profile.variance[k] > 0:
            mine = types == k
            sigma2 = math.log1p(profile.variance[k] / profile.t0[k] ** 2)
            mu = math.log(profile.t0[k]) - sigma2 / 2
            service[mine] = profile.c[k] * budgets[k] + rng.lognormal(
                mu, math.sqrt(sigma2), mine.sum()
            )
    system = _system_times(gaps, service)
    return system[total - queries :], types[total - queries :]


def refined(profile: Profile, budgets: np.ndarray) -> np.ndarray:
    """The overall percentiles on a lattice four times finer (the lattice's own error)."""
    mix = mixture(profile, budgets, None)
    law = ExactLaw(mix, waiting_time(mix, profile.rate, resolution=4 * RESOLUTION,
                                     max_nodes=4 * MAX_NODES))  # fmt: skip
    return law.quantiles(np.array(PERCENTILES) / 100, None)


def quantiles(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, np.array(PERCENTILES) / 100, method="inverted_cdf")


def half_width(values: np.ndarray, p: float) -> float:
    """95% half-width of the p-quantile from BATCHES consecutive batches, relative."""
    each = [np.quantile(b, p / 100, method="inverted_cdf") for b in np.array_split(values, BATCHES)]
    return 2.093 * float(np.std(each, ddof=1)) / math.sqrt(BATCHES) / float(np.mean(each))


def sampled(profile: Profile, budgets: np.ndarray, queries: int, seed: int, runs: int):
    """Exact sample percentiles of ``runs`` independent simulations: overall (runs, 3),
    per type (runs, N, 3), and the first run's batch half-width of the p99 (relative)."""
    overall = np.empty((runs, len(PERCENTILES)))
    per_type = np.empty((runs, profile.size, len(PERCENTILES)))
    first = math.nan
    for r in range(runs):
        system, types = simulate(profile, budgets, queries, seed + r)
        overall[r] = quantiles(system)
        per_type[r] = [quantiles(system[types == k]) for k in range(profile.size)]
        if r == 0:
            first = half_width(system, 99.0)
    return overall, per_type, first


# long: one row per load with its overall and per-type errors; split, it reads worse
def accuracy(queries: int, seed: int, runs: int, out: list[str]) -> None:
    out.append("| mixture | rho | runs | p50 | p95 | p99 | worst per type p50 / p95 / p99 "
               "| sim p99 95% half-width | one run: p95 / p99 | lattice h/4 change |")  # fmt: skip
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = {"overall": 0.0, "per type": 0.0, "one run": 0.0}
    for name, (profile, budgets) in mixtures().items():
        mean_service = float(np.dot(profile.share, profile.t0 + profile.c * budgets))
        for rho in LOADS:
            p = profile.replace(rate=rho / mean_service)
            predicted, per_type = system_times(p, budgets).percentiles(PERCENTILES)
            count = 1 if rho < 0.8 else runs if rho < 0.95 else 5 * runs
            overall, each_type, first = sampled(p, budgets, queries, seed, count)
            rel = predicted / overall.mean(axis=0) - 1
            per = per_type / each_type.mean(axis=0) - 1
            one = predicted / overall[0] - 1
            worst_type = np.abs(per).max(axis=0)
            half = first
            if count > 1:
                spread = float(np.std(overall[:, 2], ddof=1) / overall[:, 2].mean())
                half = float(stats.t.ppf(0.975, count - 1)) * spread / math.sqrt(count)
            worst["overall"] = max(worst["overall"], float(np.abs(rel[1:]).max()))
            worst["per type"] = max(worst["per type"], float(worst_type[1:].max()))
            worst["one run"] = max(worst["one run"], float(np.abs(one[1:]).max()))
            cells = " | ".join(f"{100 * r:+.3f}%" for r in rel)
            types = " / ".join(f"{100 * r:.3f}%" for r in worst_type)
            change = float(np.abs(refined(p, budgets) / predicted - 1).max())
            row = (f"| {name} | {rho:.2f} | {count} | {cells} | {types} | {100 * half:.2f}% "
                   f"| {100 * one[1]:+.2f}% / {100 * one[2]:+.2f}% | {change:.1e} |")  # fmt: skip
            print(row, flush=True)
            out.append(row)
    summary = (f"worst p95/p99 error against the mean of the runs: overall "
               f"{100 * worst['overall']:.3f}%, per type {100 * worst['per type']:.3f}%; "
               f"against one run of {queries} queries: {100 * worst['one run']:.3f}%")  # fmt: skip
    print(summary)
    out.extend(["", summary])


def _median_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timing(out: list[str]) -> None:
    paper = thinkq.paper_profile()
    large = benchmark_profile(10_000)
    cases = [
        ("N = 6, paper, deterministic", paper, thinkq.solve(paper).budgets, 50),
        ("N = 10^4, deterministic", large, thinkq.solve(large).budgets, 5),
    ]
    cases.append(("N = 10^4, lognormal cv 0.5", large.with_variance((0.5 * large.t0) ** 2),
                  cases[1][2], 3))  # fmt: skip
    out.extend(["", "| instance | profile to p99 | one more percentile (p95 of type 3) |",
                "| --- | --- | --- |"])  # fmt: skip
    for name, profile, budgets, repeats in cases:
        system_times(profile, budgets).percentile(99)  # warm
        whole = _median_time(
            lambda p=profile, l=budgets: system_times(p, l).percentile(99), repeats
        )
        built = system_times(profile, budgets)
        one = _median_time(lambda b=built: b.percentile(95, 3), repeats)
        row = f"| {name} | {1e3 * whole:.2f} ms | {1e3 * one:.2f} ms |"
        print(row, flush=True)
        out.append(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20,
                        help="independent runs at utilisation 0.8 and 0.9 (five times "
                             "as many at 0.95)")  # fmt: skip
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    out = [f"{args.queries} simulated queries per point, seed {args.seed}; "
           f"{machine}, Python {platform.python_version()}", ""]  # fmt: skip
    print(out[0])
    start = time.perf_counter()
    accuracy(args.queries, args.seed, args.runs, out)
    timing(out)
    slo_timing(out)  # and the SLO-constrained solve (benchmarks/slo.py)
    out.append(f"\nwall time {time.perf_counter() - start:.0f} s")
    print(out[-1])
    if args.markdown:
        args.markdown.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
