"""The simulator on a profile with a ``[server]`` table (issue 14, deliverable 4).

A server with several slots is simulated event by event (``thinkq.batching.kernel``);
one slot, or no table, stays Lindley's recursion. The files under ``tests/golden/``
named ``simulate_*`` were captured from ``thinkq simulate`` (table and ``--json``) and
from the library before the simulator learned about servers, and are compared
character for character, numbers to the last digits the platform keeps
(``golden_compare``).
"""

from __future__ import annotations

import json
import math
import tracemalloc
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import thinkq
from golden_compare import same_data, same_text
from thinkq import cli, model
from thinkq._typing import FloatArray
from thinkq.batching import UNLIMITED_SLOTS, Server, chain, delay, departures
from thinkq.batching.kernel import BatchedQueue
from thinkq.simulate import Empirical, Lognormal, Simulation, simulate
from thinkq.simulate.batched import run_batched
from thinkq.simulate.queueing import lindley
from thinkq.simulate.simulator import _blocks

GOLDEN = Path(__file__).parent / "golden"
SERVER_KEYS = {
    "slots",
    "tau0",
    "tau1",
    "mean_batch",
    "analytic_mean_batch",
    "step_time",
    "analytic_step_time",
}


@dataclass(frozen=True)
class Exponential:
    """Exponential answer times: with one type the batched server is a birth-death chain."""

    mean: float

    @property
    def variance(self) -> float:
        return self.mean**2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.exponential(self.mean, size)


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output as on a wide pipe, whatever the environment of the test run says."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")


@pytest.fixture(scope="module")
def paper() -> thinkq.Profile:
    return thinkq.paper_profile()


@pytest.fixture(scope="module")
def optimum(paper: thinkq.Profile) -> np.ndarray:
    return thinkq.solve(paper).continuous.budgets


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def server_file(tmp_path: Path, slots: int, tau0: float = 0.02, tau1: float = 0.004) -> Path:
    text = resources.files("thinkq").joinpath("data/paper.toml").read_text("utf-8")
    path = tmp_path / f"server{slots}.toml"
    path.write_text(f"{text}\n[server]\nslots = {slots}\ntau0 = {tau0}\ntau1 = {tau1}\n", "utf-8")
    return path


def at_load(profile: thinkq.Profile, server: Server, budgets: np.ndarray, load: float):
    """The profile on ``server`` at the rate where rate E[S] / C(B) = ``load``."""
    m1 = model.moments(profile, budgets).mean
    return profile.with_server(server).replace(rate=load * server.max_capacity / m1)


def within(run_: Simulation, value: float) -> bool:
    lo, hi = run_.mean_system_time_ci
    return lo <= value <= hi


# ------------------------------------------------- profiles without a server: unchanged


@pytest.mark.parametrize(
    ("golden", "args"),
    [
        ("simulate_paper.txt", []),
        ("simulate_paper.json", ["--json"]),
        ("simulate_paper_uniform.txt", ["--budgets", "uniform:100", "--rate", "0.3"]),
        ("simulate_paper_uniform.json", ["--budgets", "uniform:100", "--rate", "0.3", "--json"]),
    ],
)
def test_cli_output_without_a_server_table_is_unchanged(golden: str, args: list[str]) -> None:
    result = run("simulate", "--seed", "1", "--queries", "2000", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert same_text(result.stdout, (GOLDEN / golden).read_text(encoding="utf-8"))


def test_lognormal_run_without_a_server_table_is_unchanged(paper: thinkq.Profile) -> None:
    p = paper.replace(rate=0.3)
    p = p.with_variance((0.8 * p.t0) ** 2)
    data = simulate(p, [0, 300, 0, 50, 300, 30], queries=3000, seed=2).to_dict()
    expected = (GOLDEN / "simulate_variance.json").read_text(encoding="utf-8")
    assert same_text(json.dumps(data, indent=1) + "\n", expected)
    assert "server" not in data


def test_one_slot_is_the_lindley_path_plus_the_server_figures(paper, optimum) -> None:
    plain = simulate(paper, optimum, queries=20_000, seed=5)
    server = Server(slots=1, tau0=0.02, tau1=0.004)
    one = simulate(paper.with_server(server), optimum, queries=20_000, seed=5)
    assert replace(one, server=None) == plain  # every other figure, bit for bit
    assert one.server is not None
    assert one.server.mean_batch == one.utilization  # one in service while busy
    assert one.server.analytic_mean_batch == pytest.approx(one.analytic_utilization, rel=1e-12)
    assert one.server.step_time == one.server.analytic_step_time == pytest.approx(0.024)


# ------------------------------------------------------------ the kernel against Lindley


def test_the_kernel_at_one_slot_is_lindleys_recursion_block_by_block() -> None:
    rng = np.random.default_rng(21)
    gaps = rng.exponential(1.0, 30_000)
    work = rng.gamma(0.5, 1.7, 30_000)  # load 0.85, cs^2 = 2
    queue = BatchedQueue(1, 1.0, 0.3)
    waits, systems = np.full(30_000, np.nan), np.full(30_000, np.nan)
    carry = (0.0, 0.0)
    expected = np.empty(30_000)
    for first in range(0, 30_000, 7_000):  # blocks that cut through busy periods
        block = slice(first, first + 7_000)
        served = queue.arrive(
            gaps[block], work[block], np.arange(first, min(first + 7_000, 30_000))
        )
        waits[served.tags], systems[served.tags] = served.wait, served.system
        expected[block], carry = lindley(gaps[block], work[block], carry)
    last = queue.drain()
    waits[last.tags], systems[last.tags] = last.wait, last.system
    assert last.tags.size > 0  # the last busy period was still going on
    np.testing.assert_allclose(waits, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(systems, expected + work, rtol=0, atol=1e-9)
    assert expected.max() > 10


def test_blocks_do_not_change_a_batched_run() -> None:
    rng = np.random.default_rng(22)
    gaps = rng.exponential(0.5, 20_000)
    work = rng.lognormal(0.0, 1.0, 20_000) / math.exp(0.5) * 1.3  # offered 2.6 of C(4) = 3.08
    arrivals = np.cumsum(gaps)
    whole = departures(arrivals, work, slots=4, tau0=1.0, tau1=0.1) - arrivals
    queue = BatchedQueue(4, 1.0, 0.1)
    system, wait = np.full(20_000, np.nan), np.full(20_000, np.nan)
    area = busy = 0.0
    for first in range(0, 20_000, 3_001):
        block = slice(first, first + 3_001)
        served = queue.arrive(gaps[block], work[block], np.arange(20_000)[block])
        system[served.tags], wait[served.tags] = served.system, served.wait
        area, busy = area + served.area, busy + served.busy
    last = queue.drain()
    system[last.tags], wait[last.tags] = last.system, last.wait
    np.testing.assert_allclose(system, whole, rtol=0, atol=1e-9)
    assert wait.max() > 1.0
    assert np.all(wait >= 0)
    assert np.all(wait <= system)
    # Little's law on the slots: the integral of the number in service up to the last
    # arrival is the total time in service (but for the queries still in service then)
    assert area == pytest.approx(float(np.sum(system - wait)), rel=0.002)
    assert 0.8 * arrivals[-1] < busy < arrivals[-1]


def reference_departures(
    arrivals: np.ndarray, work: np.ndarray, slots: int, tau0: float, tau1: float
) -> np.ndarray:
    """The semantics read literally, in plain Python: every query in service keeps its
    remaining solo work and loses tau(1) / tau(n) of it per second; O(B) per event."""
    out = np.empty(arrivals.size)
    remaining: dict[int, float] = {}
    waiting: list[int] = []
    now, i = 0.0, 0
    while i < arrivals.size or remaining:
        speed = (tau0 + tau1) / (tau0 + tau1 * len(remaining)) if remaining else 0.0
        first = min(remaining, key=remaining.__getitem__) if remaining else -1
        finish = now + remaining[first] / speed if remaining else math.inf
        arrive = arrivals[i] if i < arrivals.size else math.inf
        step = min(arrive, finish) - now
        for k in remaining:
            remaining[k] -= step * speed
        now += step
        if arrive <= finish:
            waiting.append(i)
            i += 1
        else:
            out[first] = now
            del remaining[first]
        while waiting and len(remaining) < slots:
            k = waiting.pop(0)
            remaining[k] = float(work[k])
    return out


@pytest.mark.parametrize(
    ("slots", "tau0", "tau1"), [(2, 1.0, 1.0), (3, 1.0, 0.1), (5, 0.0, 1.0), (4, 1.0, 0.0)]
)
def test_the_kernel_is_the_semantics_read_literally(slots: int, tau0: float, tau1: float) -> None:
    rng = np.random.default_rng(slots)
    capacity = Server(slots, tau0, tau1).max_capacity
    arrivals = np.cumsum(rng.exponential(1.0, 3000))
    work = rng.gamma(0.5, 2.0 * 0.8 * capacity, 3000)  # load 0.8, cs^2 = 2
    expected = reference_departures(arrivals, work, slots, tau0, tau1)
    got = departures(arrivals, work, slots=slots, tau0=tau0, tau1=tau1)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.max(expected - arrivals - work) > 1.0  # queries did wait and share


def test_the_batched_path_at_one_slot_agrees_with_the_lindley_simulator(paper, optimum) -> None:
    p = paper.replace(rate=0.35)  # utilisation about 0.6
    lindley_run = simulate(p, optimum, queries=40_000, seed=9)
    rng = np.random.default_rng(9)  # the same stream of arrivals, types and answers
    tally = run_batched(p, Server(1, 1.0, 0.5), optimum, None, rng, _blocks(4000, 40_000), None)
    kernel_run = tally.simulation(p, optimum, analytic=p, warmup=4000, seed=9)
    assert kernel_run.mean_system_time == pytest.approx(lindley_run.mean_system_time, rel=1e-9)
    assert kernel_run.mean_waiting_time == pytest.approx(lindley_run.mean_waiting_time, rel=1e-9)
    assert kernel_run.accuracy == lindley_run.accuracy
    assert kernel_run.utilization == pytest.approx(lindley_run.utilization, rel=1e-12)
    for ours, theirs in zip(kernel_run.tasks, lindley_run.tasks, strict=True):
        assert ours.queries == theirs.queries
        assert ours.mean_system_time == pytest.approx(theirs.mean_system_time, rel=1e-9)
    lo, hi = kernel_run.mean_system_time_ci
    assert (lo, hi) == pytest.approx(lindley_run.mean_system_time_ci, rel=1e-9)
    assert lo <= lindley_run.analytic_mean_system_time <= hi
    assert kernel_run.p95_system_time == pytest.approx(lindley_run.p95_system_time, rel=0.003)


# --------------------------------------------------------------- the batched simulator


def test_unlimited_slots_three_service_distributions_one_mean_time(paper, optimum) -> None:
    server = Server(slots=UNLIMITED_SLOTS, tau0=1.0, tau1=0.5)
    p = at_load(paper, server, optimum, 0.6)  # rate E[S] = 1.8 against C = 3
    answers = {
        "deterministic": None,
        "lognormal": [Lognormal(mean=float(t0), cv=1.5) for t0 in p.t0],
        "empirical": [Empirical([0.2 * t0, 1.8 * t0]) for t0 in p.t0],
    }
    runs = {
        name: simulate(p, optimum, queries=200_000, seed=31, answer_times=a)
        for name, a in answers.items()
    }
    rho = p.rate * model.moments(p, optimum).mean
    exact = chain(server, rho).batch / p.rate  # E[N] / lambda, whatever the distribution
    for name, r in runs.items():
        assert r.analytic_mean_system_time == pytest.approx(exact, rel=1e-12), name
        assert r.analytic_mean_waiting_time == 0.0
        assert r.mean_waiting_time == 0.0  # nobody waits for a slot
        assert within(r, r.analytic_mean_system_time), name
    second = [model.moments(p.with_answer_times(a), optimum).second for a in answers.values() if a]
    assert min(second) > model.moments(p, optimum).second  # the distributions do differ
    assert runs["lognormal"].p99_system_time != runs["deterministic"].p99_system_time


def test_exponential_service_at_four_slots_is_the_exact_chain() -> None:
    # one type, exponential service: the number present is the birth-death chain, so
    # the model's mean system time, batch and step are exact here
    server = Server(slots=4, tau0=1.0, tau1=0.25)  # C(4) = 2.5
    one = thinkq.Profile.from_arrays(
        names=["x"], share=[1], A=[0.5], b=[0.01], D=[0.1], t0=[1.0], c=[0.01],
        rate=2.0, alpha=30.0, max_tokens=100, server=server,
    )  # fmt: skip
    r = simulate(one, [0.0], queries=200_000, seed=3, answer_times=[Exponential(1.0)])
    exact = delay(server, 2.0, 1.0, 2.0)
    assert r.analytic_mean_system_time == pytest.approx(exact.system_time, rel=1e-12)
    assert within(r, exact.system_time)
    assert r.server is not None
    assert r.server.analytic_mean_batch == pytest.approx(exact.batch, rel=1e-12)
    assert r.server.mean_batch == pytest.approx(exact.batch, rel=0.01)
    assert r.server.step_time == pytest.approx(exact.step, rel=0.005)
    assert r.utilization == pytest.approx(0.8, rel=0.01)
    assert r.analytic_utilization == pytest.approx(0.8, rel=1e-12)


@pytest.mark.parametrize("tau1", [0.0, 0.1, 1.0])
def test_mean_batch_and_step_at_four_slots_agree_with_the_model(paper, optimum, tau1) -> None:
    server = Server(slots=4, tau0=1.0, tau1=tau1)
    p = at_load(paper, server, optimum, 0.6)
    r = simulate(p, optimum, queries=100_000, seed=4)
    assert r.server is not None
    assert r.server.slots == 4
    assert r.server.tau1 == tau1
    assert r.server.mean_batch == pytest.approx(r.server.analytic_mean_batch, rel=0.02)
    assert r.server.step_time == pytest.approx(r.server.analytic_step_time, rel=0.01)
    assert 1.0 < r.server.mean_batch < 4.0
    assert r.utilization == pytest.approx(0.6, rel=0.03)
    # the model is an approximation between one slot and unlimited: within a few percent
    assert r.mean_system_time == pytest.approx(r.analytic_mean_system_time, rel=0.05)
    assert r.analytic_mean_system_time == pytest.approx(model.system_time(p, optimum), rel=1e-12)


def test_percentiles_per_type_exist_and_are_ordered(paper, optimum) -> None:
    p = at_load(paper, Server(slots=8, tau0=1.0, tau1=0.1), optimum, 0.7)
    r = simulate(p, optimum, queries=50_000, seed=6)
    assert sum(t.queries for t in r.tasks) == r.queries
    for t in r.tasks:
        assert t.p50_system_time is not None
        assert t.p95_system_time is not None
        assert t.p99_system_time is not None
        assert 0 < t.p50_system_time <= t.p95_system_time <= t.p99_system_time
        assert t.analytic_mean_system_time > 0
    longest = max(r.tasks, key=lambda t: t.budget)
    shortest = min(r.tasks, key=lambda t: t.analytic_mean_system_time)
    assert longest.p95_system_time > shortest.p95_system_time  # type: ignore[operator]
    assert r.p50_system_time <= r.p95_system_time <= r.p99_system_time
    assert r.p95_waiting_time >= 0.0


def test_batched_memory_does_not_grow_with_queries(paper, optimum, monkeypatch) -> None:
    from thinkq.simulate import simulator

    monkeypatch.setattr(simulator, "_BLOCK", 1 << 12)  # small blocks: short runs show it
    p = at_load(paper, Server(slots=8, tau0=1.0, tau1=0.1), optimum, 0.8)
    simulate(p, optimum, queries=1000, seed=0)  # numba's cache load is not the run's

    def peak(queries: int) -> int:
        tracemalloc.start()
        simulate(p, optimum, queries=queries, seed=0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # batches of 10^4 and 4 x 10^4 queries, both longer than a block of 4096: the
    # queries still in the system are carried, not the run
    small, large = peak(200_000), peak(800_000)
    assert large < 1.5 * small


def test_batched_runs_are_reproducible_by_seed(paper, optimum) -> None:
    p = at_load(paper, Server(slots=4, tau0=1.0, tau1=0.2), optimum, 0.8)
    a = simulate(p, optimum, queries=5000, seed=12)
    assert a == simulate(p, optimum, queries=5000, seed=12)
    assert a.mean_system_time != simulate(p, optimum, queries=5000, seed=13).mean_system_time


def test_unstable_budgets_on_a_batched_server_name_the_capacity(paper) -> None:
    p = paper.with_server(Server(slots=4, tau0=1.0, tau1=1.0))  # C(4) = 1.6
    with pytest.raises(ValueError, match=r"^budgets: .*C\(B\) = 1\.6"):
        simulate(p, np.full(6, 32768.0), queries=1000)


# ------------------------------------------------------------------------------ the CLI


def test_cli_json_has_the_server_figures(tmp_path: Path) -> None:
    path = server_file(tmp_path, 4)
    result = run("simulate", path, "--seed", "2", "--queries", "20000", "--rate", "0.8", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["server"]) == SERVER_KEYS
    server = data["server"]
    assert (server["slots"], server["tau0"], server["tau1"]) == (4, 0.02, 0.004)
    assert server["mean_batch"] == pytest.approx(server["analytic_mean_batch"], rel=0.05)
    assert server["step_time"] == pytest.approx(server["analytic_step_time"], rel=0.01)
    profile = thinkq.load_profile(path).replace(rate=0.8)
    budgets = [t["budget"] for t in data["tasks"]]
    assert data["analytic_mean_system_time"] == pytest.approx(model.system_time(profile, budgets))
    lo, hi = data["mean_system_time_ci"]
    assert lo < data["mean_system_time"] < hi  # the simulated value, not the model's
    assert data["mean_system_time"] != data["analytic_mean_system_time"]


def test_cli_table_shows_the_model_and_the_server(tmp_path: Path) -> None:
    result = run("simulate", server_file(tmp_path, 4), "--seed", "2", "--queries", "5000")
    assert result.exit_code == 0, result.stderr
    assert "model T" in result.stdout
    assert "P-K" not in result.stdout
    for label in ("Server", "slots", "mean batch", "step time while busy", "0.02 + 0.004 n"):
        assert label in result.stdout
    unlimited = run("simulate", server_file(tmp_path, UNLIMITED_SLOTS), "--queries", "2000")
    assert unlimited.exit_code == 0, unlimited.stderr
    assert "unlimited" in unlimited.stdout


def test_cli_one_slot_keeps_the_paper_numbers(tmp_path: Path) -> None:
    result = run("simulate", server_file(tmp_path, 1), "--seed", "1", "--queries", "2000", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    server = data.pop("server")
    assert server["slots"] == 1
    assert server["step_time"] == pytest.approx(0.024)
    expected = json.loads((GOLDEN / "simulate_paper.json").read_text(encoding="utf-8"))
    assert same_data(data, expected)
    table = run("simulate", server_file(tmp_path, 1), "--seed", "1", "--queries", "2000")
    assert "P-K T" in table.stdout
    assert "Server" in table.stdout


def test_cli_unstable_batched_budgets_are_a_one_line_error(tmp_path: Path) -> None:
    path = server_file(tmp_path, 2)
    result = run("simulate", path, "--budgets", "uniform:32768", "--queries", "1000")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: option --budgets:")
    assert "C(B)" in lines[0]
    assert "Traceback" not in result.output
