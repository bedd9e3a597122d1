"""The batched server's delay model against its exact simulation, and the simulator's speed.

Grid (issue 14): slots B in {1, 2, 4, 8, 32, unlimited}; load in {0.3, 0.6, 0.85};
tau1/tau0 in {0, 0.1, 1, pure sharing (tau0 = 0)}; within-type squared coefficient of
variation cs^2 in {0, 1, 4} (gamma service times; 0 is deterministic). The mix is the
paper's six types at their optimal M/G/1 budgets (equal shares, solo times 0.02-5 s).
"Load" is rate E[S] / C(B), the offered work over the server's capacity; with
unlimited slots and tau1 = 0 the capacity is infinite, so there it is rate E[S] / 8.

For each point: the simulated mean system time with a 95% interval from independent
replications (each of --queries queries, its first 10% dropped as warm-up; at least 8,
more until the half-width is below 0.6% of the mean, at most 60), thinkq's model
(thinkq.batching.delay), the plain two-moment scaling it replaced ((1 + cs^2) / 2 on the
chain's wait) and llm-d's mean-field formula (T_iter = tau0 / (1 - lambda tau1 E[S] /
tau(1)), a query of solo time s taking s / tau(1) steps of T_iter each, no queue), with
relative errors. Then the
simulator's speed against Ciw's limited-processor-sharing node (ps_threshold = 1 is
tau0 = 0; ps_threshold = B is tau1 = 0) in the same run, and their means side by side.

    python benchmarks/batch_model.py [--quick] [--queries N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import ciw
import numpy as np
from scipy import stats

import thinkq
from thinkq import model
from thinkq.batching import UNLIMITED_SLOTS, Server, chain, delay, departures

SLOTS = (1, 2, 4, 8, 32, UNLIMITED_SLOTS)
LOADS = (0.3, 0.6, 0.85)
RATIOS: tuple[float | None, ...] = (0.0, 0.1, 1.0, None)  # None: pure sharing
SCVS = (0.0, 1.0, 4.0)
REPLICATIONS = (8, 60)  # fewest and most independent runs per point
TARGET = 0.006  # stop once the 95% half-width is below this fraction of the mean


def mix() -> tuple[np.ndarray, np.ndarray]:
    """Solo service times (s) and shares of the paper's six types at their optimum."""
    profile = thinkq.paper_profile()
    budgets = thinkq.solve(profile).budgets
    return model.service_time(profile, budgets), np.asarray(profile.share, dtype=float)


def server_for(slots: int, ratio: float | None) -> Server:
    return (
        Server(slots=slots, tau0=0.0, tau1=1.0)
        if ratio is None
        else Server(slots=slots, tau0=1.0, tau1=ratio)
    )


def rate_for(server: Server, load: float, m1: float) -> float:
    capacity = server.max_capacity
    if capacity > 1e5:  # unlimited slots with perfect batching: no capacity limit
        capacity = 8.0
    return load * capacity / m1


def draw_work(
    rng: np.random.Generator, size: int, means: np.ndarray, shares: np.ndarray, scv: float
) -> np.ndarray:
    means = means[rng.choice(len(means), size=size, p=shares / shares.sum())]
    if scv == 0.0:
        return means
    return rng.gamma(1.0 / scv, means * scv)


def simulated(
    server: Server,
    rate: float,
    draw: Callable[[int], np.ndarray],
    queries: int,
    rng: np.random.Generator,
    replications: tuple[int, int] = REPLICATIONS,
) -> tuple[float, float, int]:
    """Mean system time, its 95% half-width and the number of replications run."""
    means: list[float] = []
    while True:
        work = draw(queries)
        arrivals = np.cumsum(rng.exponential(1.0 / rate, queries))
        times = departures(arrivals, work, slots=server.slots, tau0=server.tau0,
                           tau1=server.tau1)  # fmt: skip
        means.append(float(np.mean((times - arrivals)[queries // 10 :])))
        if len(means) >= replications[0]:
            mean = float(np.mean(means))
            half = (
                float(stats.t.ppf(0.975, len(means) - 1))
                * float(np.std(means, ddof=1))
                / math.sqrt(len(means))
            )
            if half < TARGET * mean or len(means) >= replications[1]:
                return mean, half, len(means)


def two_moment(server: Server, rate: float, m1: float, m2: float) -> float:
    """The model before: the chain's wait times (1 + cs^2) / 2 (P-K's factor) at every B."""
    if server.single:
        return delay(server, rate, m1, m2).system_time
    c = chain(server, rate * m1)
    return (c.batch + c.waiting * m2 / (2.0 * m1 * m1)) / rate


def mean_field(server: Server, rate: float, m1: float) -> float:
    """llm-d's steady state: T_iter = tau0 / (1 - rho), rho = lambda tau1 E[steps]."""
    steps = m1 / server.step_time(1)
    rho = rate * server.tau1 * steps
    if rho >= 1.0:
        return math.inf
    return steps * server.tau0 / (1.0 - rho)


def accuracy_table(  # long: one row per grid point, printed as it comes
    queries: int, seed: int, replications: tuple[int, int] = REPLICATIONS
) -> list[dict[str, float | str]]:
    rng = np.random.default_rng(seed)
    means, shares = mix()
    m1 = float(np.dot(shares, means))
    rows: list[dict[str, float | str]] = []
    for slots in SLOTS:
        for ratio in RATIOS:
            server = server_for(slots, ratio)
            for load in LOADS:
                rate = rate_for(server, load, m1)
                for scv in SCVS:
                    m2 = float(np.dot(shares, means**2)) * (1.0 + scv)
                    sim, half, runs = simulated(
                        server, rate,
                        lambda size, scv=scv: draw_work(rng, size, means, shares, scv),
                        queries, rng, replications,
                    )  # fmt: skip
                    ours = delay(server, rate, m1, m2).system_time
                    before = two_moment(server, rate, m1, m2)
                    theirs = mean_field(server, rate, m1)
                    rows.append({
                        "slots": "inf" if slots == UNLIMITED_SLOTS else str(slots),
                        "ratio": "PS" if ratio is None else f"{ratio:g}",
                        "load": load, "scv": scv, "sim": sim, "half": half, "runs": runs,
                        "model": ours, "model_err": ours / sim - 1.0,
                        "before": before, "before_err": before / sim - 1.0,
                        "mean_field": theirs, "mf_err": theirs / sim - 1.0,
                    })  # fmt: skip
                    print(
                        f"B={rows[-1]['slots']:>4} tau1/tau0={rows[-1]['ratio']:>3} load={load:<4} "
                        f"cs2={scv:g}  sim {sim:8.4f} ± {half:.4f} ({runs} runs)  model "
                        f"{ours:8.4f} ({(ours / sim - 1) * 100:+6.2f}%)  (1+cs2)/2 "
                        f"{(before / sim - 1) * 100:+6.2f}%  mean-field {theirs:8.4f} "
                        f"({(theirs / sim - 1) * 100:+7.1f}%)",
                        flush=True,
                    )
    return rows


def run_ciw(server: Server, rate: float, work: np.ndarray, seed: int) -> float:
    threshold = 1 if server.tau0 == 0.0 else server.slots
    values = iter(work.tolist())
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate)],
        service_distributions=[ciw.dists.Sequential(list(values))],
        number_of_servers=[server.slots],
        ps_thresholds=[threshold],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(network, node_class=ciw.PSNode)
    sim.simulate_until_max_customers(len(work), method="Finish")
    return float(np.mean([r.waiting_time + r.service_time for r in sim.get_all_records()]))


def speed_table(queries: int, seed: int) -> list[dict[str, float | str]]:
    rng = np.random.default_rng(seed)
    means, shares = mix()
    m1 = float(np.dot(shares, means))
    rows: list[dict[str, float | str]] = []
    for name, server in (("pure sharing", Server(8, 0.0, 1.0)), ("perfect", Server(8, 1.0, 0.0))):
        rate = rate_for(server, 0.6, m1)
        peer_size = max(queries // 100, 20_000)
        work = draw_work(rng, peer_size, means, shares, 1.0)
        arrivals = np.cumsum(rng.exponential(1.0 / rate, queries))
        big = draw_work(rng, queries, means, shares, 1.0)
        departures(arrivals[:10], big[:10], slots=8, tau0=server.tau0, tau1=server.tau1)
        started = time.perf_counter()
        out = departures(arrivals, big, slots=8, tau0=server.tau0, tau1=server.tau1)
        ours = queries / (time.perf_counter() - started)
        started = time.perf_counter()
        ciw_mean = run_ciw(server, rate, work, seed)
        theirs = peer_size / (time.perf_counter() - started)
        rows.append({
            "server": name, "ours": ours, "ciw": theirs, "ratio": ours / theirs,
            "our_mean": float(np.mean(out - arrivals)), "ciw_mean": ciw_mean,
            "model": delay(server, rate, m1, float(np.dot(shares, means**2)) * 2.0).system_time,
        })  # fmt: skip
        print(
            f"B=8 {name}: thinkq {ours / 1e6:.1f} M queries/s, Ciw {theirs / 1e3:.1f} k/s "
            f"({ours / theirs:,.0f}x); means: thinkq {rows[-1]['our_mean']:.3f} "
            f"({queries:,} queries), Ciw {ciw_mean:.3f} ({peer_size:,}), "
            f"model {rows[-1]['model']:.3f}",
            flush=True,
        )
    return rows


def markdown(accuracy: list[dict[str, float | str]], speed: list[dict[str, float | str]]) -> str:
    lines = [
        "| B | tau1/tau0 | load | cs^2 | simulated E[T] (s) | runs | model | error "
        "| (1 + cs^2) / 2 | error | mean-field | error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in accuracy:
        lines.append(
            f"| {r['slots']} | {r['ratio']} | {r['load']} | {r['scv']:g} | "
            f"{r['sim']:.4f} ± {r['half']:.4f} | {r['runs']} | {r['model']:.4f} | "
            f"{float(r['model_err']) * 100:+.2f}% | {r['before']:.4f} | "
            f"{float(r['before_err']) * 100:+.2f}% | {r['mean_field']:.4f} | "
            f"{float(r['mf_err']) * 100:+.1f}% |"
        )
    lines += ["", "| server (B = 8) | thinkq (queries/s) | Ciw (queries/s) | ratio |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for r in speed:
        lines.append(
            f"| {r['server']} | {float(r['ours']):,.0f} | {float(r['ciw']):,.0f} | "
            f"{float(r['ratio']):,.0f}x |"
        )
    return "\n".join(lines) + "\n"


def summary(rows: list[dict[str, float | str]]) -> None:
    for key, name in (("model", "model"), ("before", "(1 + cs^2) / 2")):
        errors = [abs(float(r[f"{key}_err"])) for r in rows]
        worst = rows[int(np.argmax(errors))]
        outside = sum(abs(float(r[key]) - float(r["sim"])) > float(r["half"]) for r in rows)
        print(
            f"{name}: worst |error| {max(errors) * 100:.2f}% at B={worst['slots']} "
            f"tau1/tau0={worst['ratio']} load={worst['load']} cs2={worst['scv']:g}; "
            f"{sum(e > 0.05 for e in errors)} of {len(rows)} points beyond 5%, "
            f"{sum(e > 0.02 for e in errors)} beyond 2%; "
            f"{outside} outside the simulation's 95% interval"
        )
    differ = [r for r in rows if abs(float(r["model"]) - float(r["mean_field"])) > 1e-9]
    better = [r for r in differ if abs(float(r["model_err"])) < abs(float(r["mf_err"]))]
    seen = [r for r in differ if abs(float(r["model"]) - float(r["mean_field"])) > float(r["half"])]
    print(
        f"model closer than the mean-field formula at {len(better)} of the {len(differ)} points "
        f"where they differ, {sum(r in better for r in seen)} of the {len(seen)} where they "
        "differ by more than the simulation's half-width"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter and fewer runs")
    parser.add_argument("--queries", type=int, default=2_000_000, help="queries per replication")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args()
    queries = 200_000 if args.quick else args.queries
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    accuracy = accuracy_table(queries, args.seed, (4, 8) if args.quick else REPLICATIONS)
    summary(accuracy)
    speed = speed_table(min(queries * 4, 4_000_000), args.seed)
    if args.markdown:
        args.markdown.write_text(markdown(accuracy, speed), encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
