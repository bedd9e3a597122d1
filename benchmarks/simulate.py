"""Simulation speed and fidelity: thinkq against Ciw and SimPy on the same M/G/1 workload.

The workload is the paper's profile at its optimal integer budgets: Poisson arrivals
at 0.1 queries/s, six query types with equal shares, deterministic service per type.
Each simulator runs the same number of queries per repeat (more for thinkq, which is
fast enough); we report the median queries per second, the ratio against each peer,
and each one's mean system time against Pollaczek-Khinchine. Also a 10^8-query run of
thinkq with its peak traced memory, to show that memory stays bounded.

Then the batched server (``--part batched``): the same mix on a server with B = 8
slots at load 0.6 of its capacity, under the two step-time laws Ciw's
limited-processor-sharing node can express (pure sharing, tau0 = 0: ps_threshold 1;
perfect batching, tau1 = 0: ps_threshold 8), ``thinkq.simulate`` as a whole (the
kernel plus the tallies, percentiles and intervals) against Ciw, with both means
beside the batched model.

    python benchmarks/simulate.py [--quick] [--part mg1|batched|all] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import ciw
import numba
import numpy as np
import simpy

import thinkq
from thinkq import model
from thinkq.batching import Server
from thinkq.simulate import simulate

BATCHED_SERVERS = (("pure sharing", Server(8, 0.0, 1.0)), ("perfect batching", Server(8, 1.0, 0.0)))


def run_thinkq(profile: thinkq.Profile, budgets: np.ndarray, queries: int, seed: int) -> float:
    return simulate(profile, budgets, queries=queries, seed=seed, warmup=0).mean_system_time


def run_ciw(profile: thinkq.Profile, budgets: np.ndarray, queries: int, seed: int) -> float:
    service = model.service_time(profile, budgets)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=profile.rate)],
        service_distributions=[
            ciw.dists.MixtureDistribution(
                [ciw.dists.Deterministic(float(t)) for t in service],
                [float(s) for s in profile.share],
            )
        ],
        number_of_servers=[1],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(queries, method="Finish")
    records = sim.get_all_records()
    return float(np.mean([r.waiting_time + r.service_time for r in records]))


def run_simpy(profile: thinkq.Profile, budgets: np.ndarray, queries: int, seed: int) -> float:
    service = model.service_time(profile, budgets).tolist()
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / profile.rate, queries).tolist()
    types = rng.choice(profile.size, size=queries, p=profile.share).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    sojourn: list[float] = []

    def query(kind: int):  # type: ignore[no-untyped-def]
        arrived = env.now
        with server.request() as request:
            yield request
            yield env.timeout(service[kind])
        sojourn.append(env.now - arrived)

    def source():  # type: ignore[no-untyped-def]
        for gap, kind in zip(gaps, types, strict=True):
            yield env.timeout(gap)
            env.process(query(kind))

    env.process(source())
    env.run()
    return float(np.mean(sojourn))


Runner = Callable[[thinkq.Profile, np.ndarray, int, int], float]


def measure(
    runner: Runner, profile: thinkq.Profile, budgets: np.ndarray, queries: int, repeats: int
) -> tuple[float, float]:
    """Median queries per second and the mean of the runs' mean system times."""
    rates, means = [], []
    for seed in range(repeats):
        start = time.perf_counter()
        means.append(runner(profile, budgets, queries, seed))
        rates.append(queries / (time.perf_counter() - start))
    return statistics.median(rates), float(np.mean(means))


def memory_run(profile: thinkq.Profile, budgets: np.ndarray, queries: int) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    result = simulate(profile, budgets, queries=queries, seed=0)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, queries / seconds if result.queries else 0.0


def run_ciw_batched(profile: thinkq.Profile, budgets: np.ndarray, queries: int, seed: int) -> float:
    """Ciw's processor-sharing node with the profile's slots (tau0 = 0 or tau1 = 0 only)."""
    server = profile.server
    assert server is not None
    service = model.service_time(profile, budgets)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=profile.rate)],
        service_distributions=[
            ciw.dists.MixtureDistribution(
                [ciw.dists.Deterministic(float(t)) for t in service],
                [float(s) for s in profile.share],
            )
        ],
        number_of_servers=[server.slots],
        ps_thresholds=[1 if server.tau0 == 0.0 else server.slots],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(network, node_class=ciw.PSNode)
    sim.simulate_until_max_customers(queries, method="Finish")
    return float(np.mean([r.waiting_time + r.service_time for r in sim.get_all_records()]))


def batched(profile: thinkq.Profile, budgets: np.ndarray, quick: bool) -> str:
    """The batched table: thinkq.simulate against Ciw at B = 8, load 0.6."""
    scale = 10 if quick else 1
    m1 = model.moments(profile, budgets).mean
    lines = [
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"numba {numba.__version__}, Ciw {ciw.__version__}.",
        "Workload: the paper's mix at its optimal integer budgets on B = 8 slots, "
        "load rate E[S] / C(8) = 0.6.",
        "",
        "| server (B = 8) | thinkq.simulate (queries/s) | Ciw (queries/s) | ratio "
        "| mean E[T]: thinkq / Ciw / model (s) |",
        "|---|---|---|---|---|",
    ]
    for name, server in BATCHED_SERVERS:
        p = profile.with_server(server).replace(rate=0.6 * server.max_capacity / m1)
        simulate(p, budgets, queries=1000, seed=0)  # numba's compilation or cache load
        ours, our_mean = measure(run_thinkq, p, budgets, 4_000_000 // scale, 3)
        theirs, their_mean = measure(run_ciw_batched, p, budgets, 20_000 // scale, 3)
        analytic = model.system_time(p, budgets)
        lines.append(
            f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:,.0f}x "
            f"| {our_mean:.4f} / {their_mean:.4f} / {analytic:.4f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--part", choices=("mg1", "batched", "all"), default="all")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown")
    args = parser.parse_args()
    profile = thinkq.paper_profile()
    budgets = thinkq.solve(profile).budgets.astype(np.float64)
    text = mg1(profile, budgets, args.quick) if args.part != "batched" else ""
    if args.part != "mg1":
        text += ("\n" if text else "") + batched(profile, budgets, args.quick)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def mg1(profile: thinkq.Profile, budgets: np.ndarray, quick: bool) -> str:
    """The M/G/1 table and the memory run."""
    pk = model.system_time(profile, budgets)
    scale = 10 if quick else 1
    plan: list[tuple[str, Runner, int, int]] = [
        ("thinkq", run_thinkq, 10_000_000 // scale, 5),
        ("Ciw", run_ciw, 20_000 // scale, 3),
        ("SimPy", run_simpy, 200_000 // scale, 3),
    ]
    rows = []
    for name, runner, queries, repeats in plan:
        rate, mean = measure(runner, profile, budgets, queries, repeats)
        rows.append((name, queries, repeats, rate, mean))
        print(
            f"{name:7s} {queries:>11,} queries x{repeats}: {rate:>14,.0f} queries/s, "
            f"mean system time {mean:.4f} s (P-K {pk:.4f}, {100 * (mean / pk - 1):+.2f} %)"
        )
    ours = rows[0][3]
    memory_queries = 10_000_000 if quick else 100_000_000
    peak, big_rate = memory_run(profile, budgets, memory_queries)
    print(
        f"thinkq {memory_queries:,} queries: peak traced memory {peak:.1f} MiB, "
        f"{big_rate:,.0f} queries/s"
    )
    lines = [
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, Ciw {ciw.__version__}, SimPy {simpy.__version__}.",
        f"Workload: the paper's profile at its optimal integer budgets; P-K mean system time "
        f"{pk:.4f} s.",
        "",
        "| simulator | queries per run | runs | queries/s (median) | thinkq is faster by "
        "| mean system time (s) | vs P-K |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, queries, repeats, rate, mean in rows:
        ratio = "1x" if name == "thinkq" else f"{ours / rate:,.0f}x"
        lines.append(
            f"| {name} | {queries:,} | {repeats} | {rate:,.0f} | {ratio} | {mean:.4f} "
            f"| {100 * (mean / pk - 1):+.2f} % |"
        )
    lines += [
        "",
        f"thinkq, one run of {memory_queries:,} queries: peak traced memory {peak:.1f} MiB "
        f"({big_rate:,.0f} queries/s).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
