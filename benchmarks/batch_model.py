"""The batched server's delay model against its exact simulation, and the simulator's speed.

Grid (issue 14): slots B in {1, 2, 4, 8, 32, unlimited}; load in {0.3, 0.6, 0.85};
tau1/tau0 in {0, 0.1, 1, pure sharing (tau0 = 0)}; within-type squared coefficient of
variation cs^2 in {0, 1, 4} (gamma service times; 0 is deterministic). The mix is the
paper's six types at their optimal M/G/1 budgets (equal shares, solo times 0.02-5 s).
"Load" is rate E[S] / C(B), the offered work over the server's capacity; with
unlimited slots and tau1 = 0 the capacity is infinite, so there it is rate E[S] / 8.

For each point: the simulated mean system time with a 95% batch-means interval (after
a 10% warm-up), thinkq's model (thinkq.batching.delay) and llm-d's mean-field formula
(T_iter = tau0 / (1 - lambda tau1 E[S] / tau(1)), a query of solo time s taking
s / tau(1) steps of T_iter each, no queue), with relative errors. Then the
simulator's speed against Ciw's limited-processor-sharing node (ps_threshold = 1 is
tau0 = 0; ps_threshold = B is tau1 = 0) in the same run, and their means side by side.

    python benchmarks/batch_model.py [--quick] [--queries N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import ciw
import numpy as np

import thinkq
from thinkq import model
from thinkq.batching import UNLIMITED_SLOTS, Server, delay, departures

SLOTS = (1, 2, 4, 8, 32, UNLIMITED_SLOTS)
LOADS = (0.3, 0.6, 0.85)
RATIOS: tuple[float | None, ...] = (0.0, 0.1, 1.0, None)  # None: pure sharing
SCVS = (0.0, 1.0, 4.0)
BATCHES = 30
T_975 = {30: 2.045}


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
    server: Server, rate: float, work: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    arrivals = np.cumsum(rng.exponential(1.0 / rate, len(work)))
    times = departures(arrivals, work, slots=server.slots, tau0=server.tau0, tau1=server.tau1)
    kept = (times - arrivals)[len(work) // 10 :]
    means = kept[: len(kept) // BATCHES * BATCHES].reshape(BATCHES, -1).mean(axis=1)
    return float(means.mean()), T_975[BATCHES] * float(means.std(ddof=1)) / math.sqrt(BATCHES)


def mean_field(server: Server, rate: float, m1: float) -> float:
    """llm-d's steady state: T_iter = tau0 / (1 - rho), rho = lambda tau1 E[steps]."""
    steps = m1 / server.step_time(1)
    rho = rate * server.tau1 * steps
    if rho >= 1.0:
        return math.inf
    return steps * server.tau0 / (1.0 - rho)


def accuracy_table(queries: int, seed: int) -> list[dict[str, float | str]]:
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
                    size = queries * (4 if scv == 4.0 and load > 0.5 else 1)
                    sim, half = simulated(
                        server, rate, draw_work(rng, size, means, shares, scv), rng
                    )
                    ours = delay(server, rate, m1, m2).system_time
                    theirs = mean_field(server, rate, m1)
                    rows.append({
                        "slots": "inf" if slots == UNLIMITED_SLOTS else str(slots),
                        "ratio": "PS" if ratio is None else f"{ratio:g}",
                        "load": load, "scv": scv, "sim": sim, "half": half,
                        "model": ours, "model_err": ours / sim - 1.0,
                        "mean_field": theirs, "mf_err": theirs / sim - 1.0,
                    })  # fmt: skip
                    print(
                        f"B={rows[-1]['slots']:>4} tau1/tau0={rows[-1]['ratio']:>3} load={load:<4} "
                        f"cs2={scv:g}  sim {sim:8.4f} ± {half:.4f}  model {ours:8.4f} "
                        f"({(ours / sim - 1) * 100:+6.2f}%)  mean-field {theirs:8.4f} "
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
        "| B | tau1/tau0 | load | cs^2 | simulated E[T] (s) | model | error | mean-field | error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in accuracy:
        lines.append(
            f"| {r['slots']} | {r['ratio']} | {r['load']} | {r['scv']:g} | "
            f"{r['sim']:.4f} ± {r['half']:.4f} | {r['model']:.4f} | "
            f"{float(r['model_err']) * 100:+.2f}% | {r['mean_field']:.4f} | "
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
    errors = [abs(float(r["model_err"])) for r in rows]
    worst = rows[int(np.argmax(errors))]
    outside = sum(abs(float(r["model"]) - float(r["sim"])) > float(r["half"]) for r in rows)
    better = sum(abs(float(r["model_err"])) <= abs(float(r["mf_err"])) for r in rows)
    print(
        f"\nmodel: worst |error| {max(errors) * 100:.2f}% at B={worst['slots']} "
        f"tau1/tau0={worst['ratio']} load={worst['load']} cs2={worst['scv']:g}; "
        f"{sum(e > 0.05 for e in errors)} of {len(rows)} points beyond 5%; "
        f"{outside} outside the simulation's 95% interval; "
        f"at least as close as the mean-field formula at {better} of {len(rows)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries per point")
    parser.add_argument("--queries", type=int, default=1_000_000, help="queries per point")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args()
    queries = 100_000 if args.quick else args.queries
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    accuracy = accuracy_table(queries, args.seed)
    summary(accuracy)
    speed = speed_table(min(queries * 4, 4_000_000), args.seed)
    if args.markdown:
        args.markdown.write_text(markdown(accuracy, speed), encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
