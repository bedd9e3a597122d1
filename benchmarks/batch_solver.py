# ruff: noqa: E402
"""Batched solver benchmark: ``solve_batched`` against today's solver in the same run.

On the paper's instance (Table I, at its own rate 0.1/s and at 1/s) with servers
B = 1, 8, 64 and unlimited (tau1 / tau0 = 0.1), and on the standard random instances
of ``instances.benchmark_profile`` at N = 10^4, 10^5, 10^6 with B = 8 (tau1 / tau0 =
0.1, and pure sharing, tau0 = 0, where the queue binds), this script times

* ``thinkq.solve.batched.solve_batched(profile, server)`` (the default: today's solver at
  B = 1, the scan over E[S] with the Newton polish otherwise);
* at B = 1 also ``method="scan"`` (the general path) and its J's relative difference
  from today's;
* ``thinkq.solve_continuous(profile)`` and ``thinkq.solve(profile)`` on the same
  profile: the B = 1 solver, for scale.

It reports the median wall time (``time.perf_counter``), J, the KKT residual in tokens,
the Newton iterations and the O(N) evaluations. One BLAS thread (as ``solver.py``).

Usage::

    python benchmarks/batch_solver.py            # full run, up to N = 10^6
    python benchmarks/batch_solver.py --quick    # up to N = 10^5
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import benchmark_profile
from thinkq import Profile, paper_profile, solve
from thinkq.batching import UNLIMITED_SLOTS, Server
from thinkq.solve import solve_continuous
from thinkq.solve.batched import solve_batched

PAPER_SERVERS = {
    "B = 1": Server(1),
    "B = 8": Server(8, 1.0, 0.1),
    "B = 64": Server(64, 1.0, 0.1),
    "unlimited": Server(UNLIMITED_SLOTS, 1.0, 0.1),
}
LARGE_SERVERS = {"B = 8": Server(8, 1.0, 0.1), "B = 8, pure sharing": Server(8, 0.0, 1.0)}


R = TypeVar("R")
HEADER = "| instance | solver | time (median) | J | KKT residual (tokens) | iter. | evaluations |"


def _median(run: Callable[[], R], repeats: int) -> tuple[float, R]:
    times = []
    result = run()  # a warm-up run, not timed
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _show(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _rows(name: str, profile: Profile, servers: dict[str, Server], repeats: int) -> list[str]:
    rows = []
    today, base = _median(lambda: solve_continuous(profile), repeats)
    integer, _ = _median(lambda: solve(profile), repeats)
    j0 = base.objective
    rows.append(
        f"| {name} | today: solve_continuous / solve | {_show(today)} / {_show(integer)} "
        f"| {j0:.10g} | {base.kkt_residual:.1e} | {base.iterations} | {base.evaluations} |"
    )
    for label, server in servers.items():
        methods = ["auto", "scan"] if server.single else ["auto"]
        for method in methods:
            seconds, r = _median(
                lambda s=server, m=method: solve_batched(profile, s, method=m), repeats
            )
            note = ""
            if server.single:
                note = f" (J rel. diff. from today's {abs(r.objective - j0) / abs(j0):.1e})"
            rows.append(
                f"| {name} | {label}, {method}{note} | {_show(seconds)} | {r.objective:.10g} "
                f"| {r.kkt_residual:.1e} | {r.iterations} | {r.evaluations} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="stop at N = 10^5")
    args = parser.parse_args()
    print(HEADER)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    paper = paper_profile()
    for rate in (paper.rate, 1.0):
        for row in _rows(f"paper, rate {rate:g}", paper.replace(rate=rate), PAPER_SERVERS, 21):
            print(row, flush=True)
    sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    for n in sizes:
        repeats = 5 if n <= 100_000 else 3
        for row in _rows(f"N = {n:,}", benchmark_profile(n), LARGE_SERVERS, repeats):
            print(row, flush=True)


if __name__ == "__main__":
    main()
