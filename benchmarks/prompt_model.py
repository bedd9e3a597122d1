"""The batched model with a prompt stage against its exact simulation.

llama.cpp's ``llama-server`` computes a query's prompt alone, at full speed, while the
batch waits (``docs/batching.md``, "A prompt stage"). thinkq's model of it is the (N, j)
chain of :mod:`thinkq.batching.prompts` (exact for exponential prompt and decode) with
the single-phase model's cs^2 correction of the wait. This script checks it against
:func:`thinkq.batching.departures` with the prompt stage, event by event, on the
semantics a profile gives: every prompt p seconds (deterministic), then a gamma
distributed decode with mean E[S] - p, the solo time S = p + decode having squared
coefficient of variation cs^2.

Grid: slots B in {2, 4, 8} with tau(n) = tau0 (1 + n) (C(B) = 2B / (B + 1)), and B = 4
with the steps measured on llama-server + SmolLM2 (``benchmarks/smollm2_batched4.toml``);
the prompt's share p / E[S] in {0.1, 0.3}; utilisation u in {0.3, 0.6, 0.85} (the load
over the load limit, :meth:`thinkq.batching.Server.utilization`); cs^2 in {0, 1, 4}
(0: the decode is deterministic). E[S] = 0.1 s. For each point: the simulated mean
system time with a 95 % interval from ``--runs`` replications of ``--queries`` queries
(a tenth more as warm-up), the model, and the single-phase model at the same load (the
prompt batched like decode steps), with their errors.

    python benchmarks/prompt_model.py [--queries N] [--runs R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from scipy import stats

from thinkq.batching import Server, delay, departures

MEAN = 0.1
STEPS = ((1, 0.007155), (2, 0.014666), (3, 0.020702), (4, 0.021762))


def servers() -> list[tuple[str, Server]]:
    """The grid's servers, each with its label."""
    lines = [(f"B={b}, line", Server(slots=b, tau0=0.01, tau1=0.01)) for b in (2, 4, 8)]
    return [
        *lines,
        ("B=4, SmolLM2 steps", Server(slots=4, tau0=0.00135, tau1=0.00605, steps=STEPS)),
    ]


def simulate(
    server: Server, rate: float, cs2: float, queries: int, rng: np.random.Generator
) -> float:
    """One replication's mean system time (its first tenth dropped)."""
    warm = queries // 10
    total = queries + warm
    arrivals = np.cumsum(rng.exponential(1.0 / rate, total))
    rest = MEAN - server.prompt
    if cs2 == 0:
        decode = np.full(total, rest)
    else:  # gamma with mean rest and variance cs2 MEAN^2
        scale = cs2 * MEAN * MEAN / rest
        decode = rng.gamma(rest / scale, scale, total)
    work = server.prompt + decode
    table = server.step_table() if server.steps else None
    tau0, tau1 = server.tail_line()
    out = departures(
        arrivals, work, slots=server.slots, tau0=tau0, tau1=tau1, table=table, prompt=server.prompt
    )
    return float(np.mean((out - arrivals)[warm:]))


def point(
    server: Server, u: float, cs2: float, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, float]:
    """Simulation, model and single-phase model at utilisation ``u``."""
    rate = u * server.rate_limit(MEAN)
    runs = [simulate(server, rate, cs2, args.queries, rng) for _ in range(args.runs)]
    mean = float(np.mean(runs))
    half = float(stats.t.ppf(0.975, args.runs - 1) * np.std(runs, ddof=1) / np.sqrt(args.runs))
    m2 = (1.0 + cs2) * MEAN * MEAN
    model = delay(server, rate, MEAN, m2).system_time
    flat = Server(server.slots, server.tau0, server.tau1, server.steps)
    single = delay(flat, rate, MEAN, m2).system_time
    return {"sim": mean, "half": half, "model": model, "single": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200_000, help="Per replication.")
    parser.add_argument("--runs", type=int, default=6, help="Replications per point.")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--markdown", type=Path, help="Also write the table here.")
    args = parser.parse_args()
    if args.queries < 100 or args.runs < 2:
        parser.error("--queries >= 100 and --runs >= 2")
    rng = np.random.default_rng(args.seed)
    header = (
        "| server | p / E[S] | u | cs^2 | simulated (s), 95 % | model (s) | error "
        "| single-phase model (s) | its error |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    errors: list[float] = []
    began = time.perf_counter()
    for label, base in servers():
        for share in (0.1, 0.3):
            server = Server(base.slots, base.tau0, base.tau1, base.steps, prompt=share * MEAN)
            for u in (0.3, 0.6, 0.85):
                for cs2 in (0.0, 1.0, 4.0):
                    r = point(server, u, cs2, args, rng)
                    error = r["model"] / r["sim"] - 1.0
                    errors.append(abs(error))
                    lines.append(
                        f"| {label} | {share} | {u} | {cs2:g} | {r['sim']:.4f} ± {r['half']:.4f} "
                        f"| {r['model']:.4f} | {error:+.1%} | {r['single']:.4f} "
                        f"| {r['single'] / r['sim'] - 1.0:+.1%} |"
                    )
                    print(lines[-1], flush=True)
    summary = (
        f"\n{len(errors)} points; model error |median| {np.median(errors):.1%}, "
        f"max {max(errors):.1%}; {args.runs} x {args.queries:,} queries a point, "
        f"{time.perf_counter() - began:.0f} s on {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print(summary)
    if args.markdown is not None:
        args.markdown.write_text("\n".join(lines) + "\n" + summary + "\n")


if __name__ == "__main__":
    main()
