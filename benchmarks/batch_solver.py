# ruff: noqa: E402
"""Batched solver benchmark: a profile with a server table against today's solver.

On the paper's instance (Table I, at its own rate 0.1/s and at 1/s) with servers
B = 1, 8, 64 and unlimited (tau1 / tau0 = 0.1), and on the standard random instances
of ``instances.benchmark_profile`` at N = 10^4, 10^5, 10^6 with B = 8 (tau1 / tau0 =
0.1, and pure sharing, tau0 = 0, where the queue binds), this script times

* ``thinkq.solve.solve_continuous(profile.with_server(server))`` and
  ``thinkq.solve(...)`` (the integer budgets too): today's solver at B = 1, the scan
  over E[S] with the Newton polish otherwise (``thinkq.solve.batched``);
* at B = 1 also ``solve_batched(profile, server, method="scan")`` (the general path)
  and its J's relative difference from today's;
* the same two calls without a server table: the paper's M/G/1 solver, for scale.

It reports the median time, J, the KKT residual in tokens, the Newton iterations and
the O(N) evaluations. One BLAS thread (as ``solver.py``). Times are CPU time of this
process (``time.process_time``), less disturbed by other jobs on a shared machine than
wall time; ``--wall`` reports ``time.perf_counter`` instead.

Usage::

    python benchmarks/batch_solver.py            # full run, up to N = 10^6
    python benchmarks/batch_solver.py --quick    # up to N = 10^5
    python benchmarks/batch_solver.py --wall     # wall time instead of CPU time
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
from thinkq.solve import ContinuousResult, solve_continuous
from thinkq.solve.batched import solve_batched

PAPER_SERVERS = {
    "B = 1": Server(1),
    "B = 8": Server(8, 1.0, 0.1),
    "B = 64": Server(64, 1.0, 0.1),
    "unlimited": Server(UNLIMITED_SLOTS, 1.0, 0.1),
}
LARGE_SERVERS = {"B = 8": Server(8, 1.0, 0.1), "B = 8, pure sharing": Server(8, 0.0, 1.0)}


R = TypeVar("R")
HEADER = (
    "| instance | solver | continuous / with integer budgets (median) | J "
    "| KKT residual (tokens) | iter. | evaluations |"
)
CLOCK = time.process_time


def _median(run: Callable[[], R], repeats: int) -> tuple[float, R]:
    times = []
    result = run()  # a warm-up run, not timed
    for _ in range(repeats):
        start = CLOCK()
        result = run()
        times.append(CLOCK() - start)
    return statistics.median(times), result


def _show(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _row(name: str, label: str, times: str, r: ContinuousResult) -> str:
    return (
        f"| {name} | {label} | {times} | {r.objective:.10g} | {r.kkt_residual:.1e} "
        f"| {r.iterations} | {r.evaluations} |"
    )


def _rows(name: str, profile: Profile, servers: dict[str, Server], repeats: int) -> list[str]:
    today, base = _median(lambda: solve_continuous(profile), repeats)
    integer, _ = _median(lambda: solve(profile), repeats)
    j0 = base.objective
    rows = [_row(name, "no server table (M/G/1)", f"{_show(today)} / {_show(integer)}", base)]
    for label, server in servers.items():
        served = profile.with_server(server)
        seconds, r = _median(lambda p=served: solve_continuous(p), repeats)
        with_integer, _ = _median(lambda p=served: solve(p), repeats)
        note = ""
        if server.single:
            note = f" (J rel. diff. from M/G/1 {abs(r.objective - j0) / abs(j0):.1e})"
        rows.append(_row(name, label + note, f"{_show(seconds)} / {_show(with_integer)}", r))
        if server.single:
            seconds, r = _median(lambda p=served: solve_batched(p, method="scan"), repeats)
            note = f" (J rel. diff. {abs(r.objective - j0) / abs(j0):.1e})"
            rows.append(_row(name, f"{label}, scan{note}", _show(seconds), r))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="stop at N = 10^5")
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time
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
