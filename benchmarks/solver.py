# ruff: noqa: E402
"""Solver benchmark: thinkq's default solver against the paper's methods and two peers.

On one instance per size N (``instances.benchmark_profile``: the paper's Table I for
N = 6, fixed-seed random profiles otherwise) this script times

* thinkq's default solver, ``solve_continuous`` (projected Newton), from l = 0 and
  warm-started from the optimum perturbed by +-5% (online re-solving);
* ``thinkq.solve`` (continuous solve plus the integer budgets of eq. 39);
* the paper's fixed point (24) and projected gradient ascent (29), the latter with an
  iteration cap (it is slow) and skipped at N = 10^6;
* scipy's L-BFGS-B on -J with the analytic gradient and bounds [0, l_max];
* cvxpy + Clarabel on the DCP form of J (up to N = 10^4).

For each it reports the median wall time (``time.perf_counter``), the ratio to thinkq's
cold solve in the same run, the J gap to the best J any method found (J evaluated by
``thinkq.model.objective`` on every method's budgets), the KKT residual in tokens
(``thinkq.model.kkt_residual``) and what the method said about its own convergence.

L-BFGS-B and the stability boundary: J = -inf where lambda E[S] >= 1, and L-BFGS-B
stops at its start point when handed -inf. Here it starts at l = 0 (always stable)
and outside the stability region it minimises a finite penalty instead of -J:
f = BIG lambda E[S] (>= BIG there, growing with how far outside the point is), with
BIG = 1e6 (1 + |J(0)|) > -J(0), and the penalty's gradient BIG lambda pi c, which
points back inside. Every accepted step must decrease f below its value at the start,
so a trial point outside is always rejected and the line search backtracks into the
region; the table reports how many evaluations fell outside. (On the benchmark
instances none do; on random instances at alpha = 3000 and load 0.9 about one in six
runs steps outside once, backtracks, and still converges.)

BLAS threads: the script sets ``OPENBLAS_NUM_THREADS`` (and the OpenMP and MKL
equivalents) to 1 unless they are set already, before numpy is imported. On a small
machine shared with other jobs a multi-threaded BLAS waits for busy cores: a 1 ms
L-BFGS-B solve at N = 6 was seen to take 170 ms now and then. One thread per process
measures the algorithms, not the scheduler; every method gets the same setting, and
the table's notes record it. Set the variables to measure something else.

Usage::

    python benchmarks/solver.py                 # full run: N = 6, 100, 10^4, 10^6
    python benchmarks/solver.py --quick         # smoke run: N = 6 and 100 only
    python benchmarks/solver.py --markdown FILE # also write the table as markdown
"""

from __future__ import annotations

import os

# before numpy is imported (see the module doc)
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import math
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cvxpy as cp
import numpy as np
import scipy
from numpy.typing import NDArray
from scipy.optimize import Bounds as Box
from scipy.optimize import minimize

import thinkq
from instances import benchmark_profile
from thinkq import Profile, model
from thinkq.solve import solve_continuous

FloatArray = NDArray[np.float64]

#: (N, stress) of every instance; stress instances: see ``instances``.
FULL_CASES = (
    (6, False),
    (100, False),
    (10_000, False),
    (1_000_000, False),
    (100, True),
    (10_000, True),
    (1_000_000, True),
)
QUICK_CASES = ((6, False), (100, False), (100, True))
#: Timed runs per size (the median is reported).
RUNS = {6: 7, 100: 7, 10_000: 3, 1_000_000: 3}
#: Iteration caps of the paper's gradient ascent (29); None: not run.
GRADIENT_CAP: dict[int, int | None] = {6: 200_000, 100: 20_000, 10_000: 2_000, 1_000_000: None}
#: L-BFGS-B iteration limits: large enough to stop on its own below 10^6.
LBFGS_CAP = {6: 50_000, 100: 50_000, 10_000: 50_000, 1_000_000: 20}
CVXPY_MAX_N = 10_000
#: A repeat of a call faster than this (seconds) is a batch of calls (see ``measure``).
BATCH = 0.05
#: Warm start: the optimum times (1 + u), u uniform in [-PERTURBATION, PERTURBATION].
PERTURBATION = 0.05
WARM_SEED = 7
#: Clarabel's tolerances (its defaults are 1e-8 and stop far from the optimum here).
CLARABEL = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8}
REFERENCE = "thinkq Newton (cold)"


class Outcome(NamedTuple):
    """What one run of a method produced."""

    budgets: FloatArray
    converged: bool | None
    status: str
    phases: dict[str, float]


@dataclass
class Row:
    """One line of the table."""

    n: int
    instance: str
    method: str
    runs: int = 0
    number: int = 1
    seconds: float = math.nan
    ratio: float = math.nan
    gap: float = math.nan
    kkt: float = math.nan
    converged: bool | None = None
    status: str = ""
    budgets: FloatArray | None = field(default=None, repr=False)
    continuous: bool = True


# ----------------------------------------------------------------------------- timing


def _runs_after_first(planned: int, first: float) -> int:
    """Fewer repeats for slow runs so the full benchmark stays within its budget."""
    if first * planned <= 20.0:
        return planned
    return min(planned, 3) if first <= 40.0 else 1


def measure(
    run: Callable[[], Outcome], planned: int, *, warmup: bool
) -> tuple[Outcome, list[dict[str, float]], int]:
    """Time ``run``: ``planned`` repeats (fewer if slow), each a batch of ``number`` calls.

    With ``warmup`` one untimed call comes first; a call faster than ``BATCH`` seconds
    then makes each repeat a batch of calls (as ``timeit`` does) so that the timer and
    scheduler noise is small against the time measured. Returns the last outcome,
    one dict per repeat with the time per call (``"total"``) and per-call times of the
    phases the run reported, and ``number``.
    """
    number = 1
    if warmup:
        start = time.perf_counter()
        run()
        first = time.perf_counter() - start
        if first < BATCH:
            number = max(1, int(BATCH / max(first, 1e-7)))
    times: list[dict[str, float]] = []
    runs = planned
    outcome = None
    while len(times) < runs:
        phases: dict[str, float] = {}
        start = time.perf_counter()
        for _ in range(number):
            outcome = run()
            for key, value in outcome.phases.items():
                phases[key] = phases.get(key, 0.0) + value
        elapsed = time.perf_counter() - start
        times.append({"total": elapsed / number, **{k: v / number for k, v in phases.items()}})
        if len(times) == 1:
            runs = _runs_after_first(planned, elapsed)
    assert outcome is not None
    return outcome, times, number


def _median(times: list[dict[str, float]], key: str) -> float:
    return statistics.median(t[key] for t in times)


# ----------------------------------------------------------------------------- methods


def thinkq_run(profile: Profile, **options: Any) -> Callable[[], Outcome]:
    def run() -> Outcome:
        r = solve_continuous(profile, **options)
        return Outcome(r.budgets, r.converged, f"{r.message}; {r.iterations} it", {})

    return run


def thinkq_integer_run(profile: Profile) -> Callable[[], Outcome]:
    def run() -> Outcome:
        r = thinkq.solve(profile)
        c = r.continuous
        status = f"integer budgets (eq. 39); continuous: {c.iterations} it"
        return Outcome(r.budgets.astype(np.float64), c.converged, status, {})

    return run


def lbfgs_run(profile: Profile, max_iter: int) -> Callable[[], Outcome]:
    """scipy L-BFGS-B on -J, analytic gradient, bounds [0, l_max] (boundary: module doc)."""
    workspace = model.Workspace(profile)
    rate, alpha = profile.rate, profile.alpha
    zero = np.zeros(profile.size)
    big = 1e6 * (1.0 + abs(model.objective(profile, zero)))
    penalty_gradient = big * rate * profile.share * profile.c
    outside = [0]

    def f(l: FloatArray) -> tuple[float, FloatArray]:
        x = workspace.point(l)
        m = x.moments
        if m.slack <= 0.0:
            outside[0] += 1
            return big * (1.0 - m.slack), penalty_gradient
        grad, _ = workspace.derivatives(x)
        value = alpha * model.mean_accuracy(profile, l) - rate * m.second / (2 * m.slack) - m.mean
        return -value, -grad

    # the fused evaluation is J and grad J of thinkq.model: check once
    probe = np.full(profile.size, 0.5)
    value, grad = f(probe)
    assert math.isclose(-value, model.objective(profile, probe), rel_tol=1e-12)
    assert np.allclose(-grad, model.gradient(profile, probe), rtol=1e-12, atol=0.0)

    options = {"ftol": 2.2e-15, "gtol": 0.0, "maxiter": max_iter, "maxfun": 2 * max_iter + 100}
    box = Box(0.0, float(profile.max_tokens))

    def run() -> Outcome:
        outside[0] = 0
        r = minimize(f, zero, jac=True, method="L-BFGS-B", bounds=box, options=options)
        l = model.project(np.asarray(r.x, dtype=np.float64), profile.max_tokens)
        status = f"{r.message}; {r.nit} it, {r.nfev} evals, {outside[0]} outside stability"
        return Outcome(l, bool(r.success), status, {})

    return run


def cvxpy_run(profile: Profile) -> Callable[[], Outcome]:
    """cvxpy + Clarabel on J's DCP form, with l = l_max x and x in [0, 1]^N.

    The problem is built anew in every run (cvxpy caches the compilation of a
    problem it has solved once): phase ``"solve"`` is the ``problem.solve`` call
    (compilation + Clarabel), the total adds the construction of the expression.
    """
    pi, l_max = profile.share, float(profile.max_tokens)

    def run() -> Outcome:
        x = cp.Variable(profile.size)
        l = l_max * x
        rate, a, b = profile.rate, profile.A, profile.b
        t = profile.t0 + cp.multiply(profile.c, l)
        mean = pi @ t
        accuracy = pi @ (cp.multiply(a, 1 - cp.exp(cp.multiply(-b, l))) + profile.D)
        wait = rate / 2 * cp.quad_over_lin(cp.multiply(np.sqrt(pi), t), 1 - rate * mean)
        problem = cp.Problem(cp.Maximize(profile.alpha * accuracy - wait - mean), [x >= 0, x <= 1])
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            problem.solve(solver="CLARABEL", **CLARABEL)
        solve_time = time.perf_counter() - start
        stats = problem.solver_stats
        status = (
            f"{problem.status}; Clarabel {stats.num_iters} it, "
            f"{1e3 * stats.solve_time:.3g} ms inside Clarabel"
        )
        if any("inaccurate" in str(w.message) for w in caught):
            status += " (cvxpy warned: solution may be inaccurate)"
        budgets = model.project(l_max * np.asarray(x.value, dtype=np.float64), l_max)
        return Outcome(budgets, problem.status == cp.OPTIMAL, status, {"solve": solve_time})

    return run


# ----------------------------------------------------------------------------- one size


def warm_start(profile: Profile, optimum: FloatArray) -> FloatArray:
    """The optimum with every budget scaled by a random factor in [0.95, 1.05]."""
    rng = np.random.default_rng(WARM_SEED)
    factor = 1.0 + rng.uniform(-PERTURBATION, PERTURBATION, profile.size)
    start = model.project(optimum * factor, profile.max_tokens)
    assert model.utilization(profile, start) < 1.0
    return start


def instance_label(n: int, stress: bool) -> str:
    if stress:
        return f"{n:,} stress"
    return "6 (paper)" if n == 6 else f"{n:,}"


def bench_size(n: int, stress: bool, log: Callable[[str], None]) -> tuple[list[Row], float]:
    """Every method on one instance: the rows and the best continuous J found."""
    profile = benchmark_profile(n, stress=stress)
    label = instance_label(n, stress)
    planned = RUNS.get(n, 3)
    warmup = n <= 100
    optimum = solve_continuous(profile).budgets  # untimed: the warm start is built from it
    plan: list[tuple[str, Callable[[], Outcome] | None, str, int]] = [
        (REFERENCE, thinkq_run(profile), "", planned),
        (
            "thinkq Newton (warm, +-5%)",
            thinkq_run(profile, start=warm_start(profile, optimum)),
            "",
            planned,
        ),
        ("thinkq.solve (integer)", thinkq_integer_run(profile), "", planned),
        ("paper fixed point (24)", thinkq_run(profile, method="fixed-point"), "", planned),
    ]
    cap = GRADIENT_CAP.get(n)
    if cap is None:
        reason = "skipped: about 1e5+ iterations of O(N) work each would take hours"
        plan.append(("paper gradient (29)", None, reason, 0))
    else:
        name = f"paper gradient (29), cap {cap:,}"
        plan.append((name, thinkq_run(profile, method="gradient", max_iter=cap), "", planned))
    lbfgs_cap = LBFGS_CAP.get(n, 50_000)
    name = "scipy L-BFGS-B" + (f", cap {lbfgs_cap} it" if lbfgs_cap < 1000 else "")
    plan.append((name, lbfgs_run(profile, lbfgs_cap), "", 1 if lbfgs_cap < 1000 else planned))
    if n <= CVXPY_MAX_N:
        plan.append(("cvxpy + Clarabel", cvxpy_run(profile), "", planned))
    else:
        reason = f"skipped above N = {CVXPY_MAX_N:,}: N exponential cones"
        plan.append(("cvxpy + Clarabel", None, reason, 0))

    rows: list[Row] = []
    for name, run, reason, runs in plan:
        if run is None:
            rows.append(Row(n, label, name, status=reason))
            log(f"  {label:>16}  {name}: {reason}")
            continue
        outcome, times, number = measure(run, runs, warmup=warmup)
        row = Row(
            n,
            label,
            name,
            runs=len(times),
            number=number,
            seconds=_median(times, "total"),
            converged=outcome.converged,
            status=outcome.status,
            budgets=outcome.budgets,
            continuous=name != "thinkq.solve (integer)",
        )
        if "solve" in outcome.phases:
            total = Row(**{**row.__dict__, "method": name + ": build + solve"})
            row.method = name + ": solve() call"
            row.seconds = _median(times, "solve")
            rows.extend([row, total])
        else:
            rows.append(row)
        log(f"  {label:>16}  {name}: {row.seconds * 1e3:.4g} ms x {len(times)}")
    return rows, _score(profile, rows)


def _score(profile: Profile, rows: list[Row]) -> float:
    """J gaps to the best continuous J, KKT residuals and time ratios, in place.

    Returns the best J.
    """
    values = {}
    for row in rows:
        if row.budgets is not None:
            values[id(row)] = model.objective(profile, row.budgets)
    best = max(values[id(r)] for r in rows if r.budgets is not None and r.continuous)
    reference = next(r.seconds for r in rows if r.method == REFERENCE)
    for row in rows:
        if row.budgets is None:
            continue
        value = values[id(row)]
        row.gap = best - value
        row.ratio = row.seconds / reference
        stable = model.utilization(profile, row.budgets) < 1.0
        row.kkt = model.kkt_residual(profile, row.budgets) if stable else math.inf
        row.budgets = None
    return best


# ----------------------------------------------------------------------------- output


def _fmt_time(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def _fmt_sci(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    if value == 0.0:
        return "0"
    return f"{value:.1e}"


def _fmt_runs(row: Row) -> str:
    if not row.runs:
        return "-"
    return f"{row.runs}" if row.number == 1 else f"{row.runs} x {row.number}"


def _fmt_converged(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


HEADER = ("N", "method", "runs", "time", "x thinkq", "J gap", "KKT (tokens)", "conv.", "says")


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (
            r.instance,
            r.method,
            _fmt_runs(r),
            _fmt_time(r.seconds),
            "-" if math.isnan(r.ratio) else f"{r.ratio:.3g}",
            _fmt_sci(r.gap),
            _fmt_sci(r.kkt),
            _fmt_converged(r.converged),
            r.status,
        )
        for r in rows
    ]


def _verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def goals(rows: list[Row]) -> list[str]:
    """The three performance goals, met or not on each instance family, with the numbers."""

    def find(instance: str, prefix: str) -> Row | None:
        return next(
            (r for r in rows if r.instance == instance and r.method.startswith(prefix)), None
        )

    lines = []
    for label in ("1,000,000", "1,000,000 stress"):
        row = find(label, REFERENCE)
        if row is None:
            continue
        met = row.seconds < 1.0 and row.kkt <= 1e-6
        lines.append(
            f"N = 10^6 ({label}) in < 1 s at KKT residual <= 1e-6 tokens: {_verdict(met)} "
            f"({_fmt_time(row.seconds)}, KKT {_fmt_sci(row.kkt)} tokens)"
        )
    for label in ("10,000", "10,000 stress"):
        mid = find(label, REFERENCE)
        if mid is None:
            continue
        for prefix, factor in (("cvxpy + Clarabel: solve()", 100), ("scipy L-BFGS-B", 10)):
            peer = find(label, prefix)
            if peer is None:
                continue
            speed = peer.seconds / mid.seconds
            met = speed >= factor and mid.gap <= peer.gap
            lines.append(
                f"N = 10^4 ({label}) >= {factor}x faster than {peer.method} at equal or "
                f"better J: {_verdict(met)} ({speed:.3g}x; J gap thinkq {_fmt_sci(mid.gap)} "
                f"vs {_fmt_sci(peer.gap)})"
            )
    small = find("6 (paper)", REFERENCE)
    if small is not None:
        lines.append(
            f"N = 6 (paper) under 0.3 ms per solve: {_verdict(small.seconds < 0.3e-3)} "
            f"({_fmt_time(small.seconds)})"
        )
    if not any(line.startswith("N = 10^") for line in lines):
        lines.append("the N = 10^4 and 10^6 goals are not measured by --quick")
    return lines


def machine() -> list[str]:
    model_name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"cvxpy {cp.__version__}, thinkq {thinkq.__version__}"
    )
    blas = ", ".join(
        f"{key}={os.environ.get(key, 'unset')}"
        for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    )
    return [f"{model_name}, {os.cpu_count()} logical CPUs", versions, f"BLAS threads: {blas}"]


def revision() -> str:
    """The git commit of this checkout, and whether src/ differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "git commit: unknown"
    return f"git commit {head or 'unknown'}" + (" (src/ modified)" if dirty else "")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def markdown(rows: list[Row], notes: list[str], goal_lines: list[str]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for cells in table_cells(rows):
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    out += ["", *(f"- {line}" for line in notes), "", "Goals:", ""]
    out += [f"- {line}" for line in goal_lines]
    return "\n".join(out) + "\n"


def print_table(rows: list[Row], notes: list[str], goal_lines: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        print(markdown(rows, notes, goal_lines))
        return
    table = Table(*HEADER, title="thinkq solver benchmark")
    cells = table_cells(rows)
    for k, row in enumerate(rows):
        last = k + 1 == len(rows) or rows[k + 1].instance != row.instance
        table.add_row(*cells[k], end_section=last)
    console = Console(width=200)
    console.print(table)
    for line in notes:
        console.print(line)
    console.print("Goals:")
    for line in goal_lines:
        console.print("  " + line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 6 and 100 only")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the table here")
    args = parser.parse_args(argv)
    cases = QUICK_CASES if args.quick else FULL_CASES
    began, load_before, revision_before = time.perf_counter(), load(), revision()
    rows: list[Row] = []
    best: list[str] = []
    for n, stress in cases:
        label = instance_label(n, stress)
        print(f"{label} ...", file=sys.stderr)
        found, value = bench_size(n, stress, lambda line: print(line, file=sys.stderr))
        rows.extend(found)
        best.append(f"{label}: {value:.10g}")
    elapsed = time.perf_counter() - began
    revision_after = revision()
    if revision_after != revision_before:
        revision_after = f"{revision_before}, changed during the run to {revision_after}"
    notes = [
        *machine(),
        revision_after,
        f"load average (1, 5, 15 min) before: {load_before}, after: {load()}; "
        f"whole run {elapsed:.0f} s",
        "J gap: best J of any continuous method minus this method's J (thinkq.model.objective);"
        " the integer row's gap is the cost of integer budgets",
        "best J per instance: " + "; ".join(best),
    ]
    goal_lines = goals(rows)
    print_table(rows, notes, goal_lines)
    if args.markdown is not None:
        args.markdown.write_text(markdown(rows, notes, goal_lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
