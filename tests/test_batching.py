"""The batched server: its law, the exact chain, the delay model and the event simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thinkq import ProfileError, model, paper_profile, solve
from thinkq.batching import UNLIMITED_SLOTS, Server, chain, delay, departures
from thinkq.batching.delay import deterministic_ratio

# ------------------------------------------------------------------ the server law


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"slots": 0}, "server.slots"),
        ({"slots": 2.5}, "server.slots"),
        ({"slots": True}, "server.slots"),
        ({"tau0": -1.0}, "server.tau0"),
        ({"tau1": math.nan}, "server.tau1"),
        ({"tau0": math.inf}, "server.tau0"),
        ({"tau0": 0.0, "tau1": 0.0}, "server.tau0"),
        ({"slots": 4, "tau0": 1e308, "tau1": 1e308}, "server.tau1"),  # C(B) would be nan
    ],
)
def test_a_bad_server_is_a_one_line_profile_error_naming_the_field(
    values: dict[str, float], field: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        Server(**values)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"field '{field}': ")
    assert "\n" not in str(caught.value)


def test_capacity_is_work_per_second_and_saturates_at_the_slots() -> None:
    server = Server(slots=4, tau0=1.0, tau1=0.5)
    assert server.capacity(1) == 1.0
    assert server.capacity(2) == pytest.approx(2 * 1.5 / 2.0)
    assert server.capacity(9) == server.capacity(4) == server.max_capacity
    assert Server(slots=8, tau0=0.0, tau1=1.0).max_capacity == 1.0  # pure sharing
    assert Server(slots=8, tau0=1.0, tau1=0.0).max_capacity == 8.0  # perfect batching


# ------------------------------------------------------------------ the chain


def test_the_chain_at_one_slot_is_the_m_m_1_queue() -> None:
    rho = 0.7
    c = chain(Server(slots=1), rho)
    assert c.batch == pytest.approx(rho, rel=1e-14)
    assert c.waiting == pytest.approx(rho * rho / (1 - rho), rel=1e-14)
    assert c.empty == pytest.approx(1 - rho, rel=1e-14)


def test_the_chain_with_perfect_batching_is_erlang_c() -> None:
    servers, a = 4, 2.5
    head = sum(a**k / math.factorial(k) for k in range(servers))
    last = a**servers / math.factorial(servers) / (1 - a / servers)
    waiting = last / (head + last) * (a / servers) / (1 - a / servers)
    c = chain(Server(slots=servers, tau0=1.0, tau1=0.0), a)
    assert c.waiting == pytest.approx(waiting, rel=1e-12)
    assert c.batch == pytest.approx(a, rel=1e-12)  # every server-second serves


def test_the_chain_with_unlimited_slots_is_poisson_for_perfect_batching() -> None:
    c = chain(Server(slots=UNLIMITED_SLOTS, tau0=1.0, tau1=0.0), 40.0)
    assert c.batch == pytest.approx(40.0, rel=1e-12)
    assert c.empty == pytest.approx(math.exp(-40.0), rel=1e-9)
    assert c.waiting == 0.0


SERVERS = [
    Server(slots=4, tau0=1.0, tau1=0.3),
    Server(slots=8, tau0=0.0, tau1=1.0),
    Server(slots=3, tau0=1.0, tau1=1.0),
    Server(slots=UNLIMITED_SLOTS, tau0=1.0, tau1=0.1),
]


@pytest.mark.parametrize("server", SERVERS, ids=str)
@pytest.mark.parametrize("load", [0.2, 0.6, 0.9])
def test_chain_derivatives_match_finite_differences(server: Server, load: float) -> None:
    rho = load * min(server.max_capacity, 10.0)
    h = 1e-5 * rho
    mid, up, down = chain(server, rho), chain(server, rho + h), chain(server, rho - h)
    for name in ("batch", "waiting"):
        first = getattr(mid, f"d_{name}")
        second = getattr(mid, f"d2_{name}")
        assert first == pytest.approx(
            (getattr(up, name) - getattr(down, name)) / (2 * h), rel=1e-6, abs=1e-9
        )
        assert second == pytest.approx(
            (getattr(up, f"d_{name}") - getattr(down, f"d_{name}")) / (2 * h), rel=1e-5, abs=1e-8
        )


def test_the_chain_refuses_an_unstable_load() -> None:
    with pytest.raises(ValueError, match="rho"):
        chain(Server(slots=2, tau0=1.0, tau1=1.0), 4.0 / 3.0)


# ------------------------------------------------------------------ the delay model


def test_one_slot_is_exactly_pollaczek_khinchine_on_the_paper_profile() -> None:
    profile = paper_profile()
    budgets = solve(profile).budgets
    m = model.moments(profile, budgets)
    d = delay(Server(slots=1, tau0=0.012, tau1=0.004), profile.rate, m.mean, m.second)
    assert d.system_time == pytest.approx(model.system_time(profile, budgets), rel=1e-12)
    assert d.waiting_time == pytest.approx(model.waiting_time(profile, budgets), rel=1e-12)
    assert d.slowdown == 1.0


@pytest.mark.parametrize("server", [*SERVERS, Server(slots=1)], ids=str)
def test_delay_derivatives_match_finite_differences(server: Server) -> None:
    rate, m1, m2 = 1.3, 0.5 * min(server.max_capacity, 10.0) / 1.3, 0.9
    m2 = max(m2, 1.2 * m1 * m1)
    d = delay(server, rate, m1, m2)
    h1, h2 = 1e-6 * m1, 1e-6 * m2

    def f(a: float, b: float) -> float:
        return delay(server, rate, a, b).system_time

    assert d.d_mean == pytest.approx((f(m1 + h1, m2) - f(m1 - h1, m2)) / (2 * h1), rel=1e-6)
    assert d.d_second == pytest.approx((f(m1, m2 + h2) - f(m1, m2 - h2)) / (2 * h2), rel=1e-6)
    d_up, d_down = delay(server, rate, m1 + h1, m2), delay(server, rate, m1 - h1, m2)
    assert d.d_mean_mean == pytest.approx((d_up.d_mean - d_down.d_mean) / (2 * h1), rel=1e-5)
    assert d.d_mean_second == pytest.approx(
        (d_up.d_second - d_down.d_second) / (2 * h1), rel=1e-5, abs=1e-12
    )


@pytest.mark.parametrize(
    "server",
    [Server(slots=2, tau0=1.0, tau1=0.1), Server(slots=32, tau0=0.0, tau1=1.0),
     Server(slots=64, tau0=1.0, tau1=0.0)],
    ids=str,
)  # fmt: skip
@pytest.mark.parametrize("load", [0.05, 0.3, 0.85, 0.97])
def test_delay_derivatives_match_finite_differences_at_every_load(
    server: Server, load: float
) -> None:
    # the deterministic-service ratio h(rho) moves most at light load and with many slots
    m1, m2 = 1.0, 7.0
    rate = load * server.max_capacity / m1
    d = delay(server, rate, m1, m2)
    h = 1e-6 * m1
    up, down = delay(server, rate, m1 + h, m2), delay(server, rate, m1 - h, m2)
    assert d.d_mean == pytest.approx((up.system_time - down.system_time) / (2 * h), rel=1e-6)
    assert d.d_mean_mean == pytest.approx((up.d_mean - down.d_mean) / (2 * h), rel=1e-5, abs=1e-8)
    assert d.d_mean_second == pytest.approx(
        (up.d_second - down.d_second) / (2 * h), rel=1e-5, abs=1e-12
    )
    # affine in m2 at fixed m1 (F22 = 0): d_second is the exact slope
    far = delay(server, rate, m1, 3.0 * m2)
    assert far.system_time - d.system_time == pytest.approx(2.0 * m2 * d.d_second, rel=1e-12)
    assert far.d_mean_second == pytest.approx(d.d_mean_second, rel=1e-12)


def test_the_deterministic_ratio_runs_from_light_traffic_to_heavy_traffic() -> None:
    assert deterministic_ratio(Server(slots=1), 0.5) == 0.5  # P-K: (1 + cs^2) / 2
    for slots in (2, 4, 32):
        server = Server(slots=slots, tau0=1.0, tau1=0.0)
        ratios = [deterministic_ratio(server, u * slots) for u in (1e-9, 0.3, 0.6, 0.85, 1 - 1e-9)]
        assert ratios[0] == pytest.approx(slots / (slots + 1), rel=1e-6)  # min of B residuals
        assert ratios[-1] == pytest.approx(0.5, abs=1e-6)  # heavy traffic: one fast server
        assert ratios == sorted(ratios, reverse=True)
        assert 0.5 < ratios[1] < slots / (slots + 1)
    # Cosmetatos's own value where it is below the light-traffic limit (B = 4, u = 0.85)
    cosmetatos = 0.5 * (1 + 0.15 * 3 * (math.sqrt(24) - 2) / (16 * 0.85 * 4))
    assert deterministic_ratio(Server(slots=4, tau0=1.0, tau1=0.0), 3.4) == pytest.approx(
        cosmetatos, rel=2e-3
    )


@pytest.mark.parametrize("server", SERVERS, ids=str)
def test_exponential_service_gets_the_chains_own_wait(server: Server) -> None:
    # cs^2 = 1: E[T] = E[N] / lambda of the birth-death chain, exact at every B
    rate = 0.7 * min(server.max_capacity, 10.0)
    c = chain(server, rate)
    d = delay(server, rate, 1.0, 2.0)
    assert d.system_time == pytest.approx((c.batch + c.waiting) / rate, rel=1e-12)
    assert d.waiting_time == pytest.approx(c.waiting / rate, rel=1e-12, abs=1e-300)


def test_an_unstable_load_has_infinite_delay() -> None:
    server = Server(slots=4, tau0=1.0, tau1=1.0)  # C(B) = 1.6
    d = delay(server, 2.0, 0.8, 1.0)
    assert math.isinf(d.system_time)
    assert math.isinf(d.d_mean)
    assert math.isfinite(delay(server, 2.0, 0.79, 1.0).system_time)


# ------------------------------------------------------------------ the simulator


def test_departures_by_hand() -> None:
    # B = 2, tau(n) = 1 + n: two in service each run at 2/3 of solo speed
    arrivals = np.array([0.0, 0.0, 0.5])
    work = np.array([1.0, 2.0, 1.0])
    out = departures(arrivals, work, slots=2, tau0=1.0, tau1=1.0)
    # query 0 finishes at 1.5; query 2 then starts beside query 1 (1 of 2 s left);
    # both at 2/3 speed: query 1 done at 1.5 + 1.5 = 3.0, query 2 also at 3.0
    np.testing.assert_allclose(out, [1.5, 3.0, 3.0], rtol=1e-15)


def test_one_slot_departures_are_lindleys_fifo_queue() -> None:
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1.0, 50_000))
    work = rng.gamma(0.5, 1.6, 50_000)  # load 0.8, cs^2 = 2
    out = departures(arrivals, work, slots=1, tau0=1.0, tau1=0.25)
    fifo = np.empty_like(arrivals)
    last = 0.0
    for k in range(len(arrivals)):
        last = max(last, arrivals[k]) + work[k]
        fifo[k] = last
    np.testing.assert_allclose(out, fifo, rtol=1e-9)


def _simulated_mean(
    server: Server, rate: float, work: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    """Mean system time and a 4-sigma batch-means half-width (20 batches, warm-up cut)."""
    arrivals = np.cumsum(rng.exponential(1.0 / rate, len(work)))
    times = (
        departures(arrivals, work, slots=server.slots, tau0=server.tau0, tau1=server.tau1)
        - arrivals
    )
    kept = times[len(times) // 10 :]
    batches = kept[: len(kept) // 20 * 20].reshape(20, -1).mean(axis=1)
    return float(batches.mean()), 4.0 * float(batches.std(ddof=1)) / math.sqrt(20)


def test_perfect_batching_with_exponential_service_matches_erlang_c() -> None:
    rng = np.random.default_rng(3)
    server, rate = Server(slots=4, tau0=1.0, tau1=0.0), 2.5  # E[S] = 1: load 0.625
    mean, half = _simulated_mean(server, rate, rng.exponential(1.0, 400_000), rng)
    exact = delay(server, rate, 1.0, 2.0).system_time
    assert abs(mean - exact) < half


def test_the_wait_for_a_heavy_tailed_mix_is_that_of_the_simulation() -> None:
    # the paper's six types at their optimum, within-type cs^2 = 4 (overall 12), B = 4
    # perfect batching at load 0.6: (1 + cs^2) / 2 on the chain's wait was 5.5 % high
    profile = paper_profile()
    means = model.service_time(profile, solve(profile).budgets)
    shares = np.array(profile.share, dtype=float) / sum(profile.share)
    m1, m2 = float(shares @ means), 5.0 * float(shares @ means**2)
    server, rate = Server(slots=4, tau0=1.0, tau1=0.0), 2.4 / m1
    rng = np.random.default_rng(0)
    work = rng.gamma(0.25, 4.0 * means[rng.choice(6, 4_000_000, p=shares)])
    mean, half = _simulated_mean(server, rate, work, rng)
    c = chain(server, rate * m1)
    two_moment = (c.batch + c.waiting * (m2 / m1**2) / 2) / rate  # the old (1 + cs^2) / 2
    ours = delay(server, rate, m1, m2).system_time
    assert abs(ours - mean) < 0.03 * mean
    assert two_moment - mean > max(half, 2 * abs(ours - mean))


@pytest.mark.parametrize("kind", ["deterministic", "exponential", "lognormal"])
def test_unlimited_slots_are_insensitive_to_the_service_distribution(kind: str) -> None:
    rng = np.random.default_rng(11)
    server, rate, size = Server(slots=UNLIMITED_SLOTS, tau0=1.0, tau1=0.5), 2.0, 300_000
    # every distribution has mean 1 s; load 2 against a capacity of 3
    if kind == "deterministic":
        work, m2 = np.ones(size), 1.0
    elif kind == "exponential":
        work, m2 = rng.exponential(1.0, size), 2.0
    else:
        sigma2 = math.log(5.0)  # cs^2 = 4
        work = rng.lognormal(-sigma2 / 2, math.sqrt(sigma2), size)
        m2 = 5.0
    analytic = delay(server, rate, 1.0, m2)
    assert analytic.waiting_time == 0.0
    reference = chain(server, 2.0).batch / 2.0  # E[N] / lambda: one number for all three
    assert analytic.system_time == pytest.approx(reference, rel=1e-12)
    mean, half = _simulated_mean(server, rate, work, rng)
    assert abs(mean - analytic.system_time) < half


@pytest.mark.parametrize("rate", [1e-30, 1e-17, 1e-13])
def test_a_vanishing_load_is_no_load_without_a_warning(rate: float) -> None:
    law = delay(Server(8, 0.02, 0.002), rate, 1.0, 2.0)
    assert law.system_time == pytest.approx(1.0)
    assert law.waiting_time == pytest.approx(0.0, abs=1e-9)
    assert law.step == pytest.approx(0.022)
    assert all(math.isfinite(v) for v in law)


# ------------------------------------------------------------------ measured steps

MEASURED = ((1, 0.00685), (2, 0.01452), (4, 0.02153))


def test_measured_steps_are_interpolated_and_continued_along_the_last_segment() -> None:
    server = Server(8, 0.0014, 0.0055, steps=[list(p) for p in MEASURED])
    assert server.steps == MEASURED  # lists become a tuple of pairs
    assert server.step_time(1) == pytest.approx(0.00685)
    assert server.step_time(3) == pytest.approx((0.01452 + 0.02153) / 2)
    slope = (0.02153 - 0.01452) / 2
    assert server.step_time(8) == pytest.approx(0.02153 + 4 * slope)
    assert server.capacity(2) == pytest.approx(2 * 0.00685 / 0.01452)
    assert server.max_capacity == pytest.approx(8 * 0.00685 / (0.02153 + 4 * slope))
    np.testing.assert_allclose(server.step_table()[1:], [server.step_time(n) for n in (1, 2, 3, 4)])
    assert Server(8, 1.0, 0.0, steps=[(1, 0.02), (2, 0.01)]).step_time(6) == pytest.approx(0.01)
    assert "interpolated" in server.law
    assert server.to_dict()["steps"] == [[1, 0.00685], [2, 0.01452], [4, 0.02153]]


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([(2, 0.01)], "the first point must be n = 1"),
        ([(1, 0.01), (1, 0.02)], "n must increase"),
        ([(1, 0.01), (9, 0.02)], "n must be an integer in [1, slots = 8]"),
        ([(1, 0.0)], "must be finite and > 0"),
        ([(1, 0.01, 3)], "expected [n, seconds] pairs"),
        ("0.01", "expected a list of [n, seconds] pairs"),
    ],
)
def test_bad_steps_are_one_line_errors_naming_the_field(steps: object, why: str) -> None:
    with pytest.raises(ProfileError) as caught:
        Server(8, 0.01, 0.0, steps=steps)  # type: ignore[arg-type]
    assert caught.value.field == "server.steps"
    assert str(caught.value).startswith("field 'server.steps': ")
    assert why in str(caught.value)


def test_steps_on_a_line_give_the_lines_numbers() -> None:
    line = Server(6, 0.01, 0.002)
    points = [(n, line.step_time(n)) for n in (1, 3, 6)]
    table = Server(6, 0.01, 0.002, steps=points)
    for rho in (0.3, 1.5, 0.95 * line.max_capacity):
        a, b = delay(line, rho / 2.0, 2.0, 9.0), delay(table, rho / 2.0, 2.0, 9.0)
        np.testing.assert_allclose(tuple(b), tuple(a), rtol=1e-9)
    arrivals = np.cumsum(np.random.default_rng(1).exponential(0.4, 5000))
    work = np.random.default_rng(2).exponential(1.0, 5000)
    np.testing.assert_allclose(
        departures(arrivals, work, slots=6, tau0=0.01, tau1=0.002),
        departures(arrivals, work, slots=6, tau0=0.01, tau1=0.002, table=table.step_table()),
        rtol=1e-9,
    )


def test_a_measured_law_is_exact_for_exponential_service_against_the_simulator() -> None:
    # exponential service: the chain is exact whatever the capacities, so the model and
    # the simulation of the same measured law must agree
    server = Server(4, 0.0014, 0.0055, steps=MEASURED)
    rng = np.random.default_rng(7)
    rate, queries = 0.9 * server.max_capacity, 400_000
    arrivals = np.cumsum(rng.exponential(1.0 / rate, queries))
    work = rng.exponential(1.0, queries)
    table = server.step_table()
    out = departures(arrivals, work, slots=4, tau0=server.tail_line()[0],
                     tau1=server.tail_line()[1], table=table)  # fmt: skip
    simulated = float(np.mean((out - arrivals)[queries // 10 :]))
    assert simulated == pytest.approx(delay(server, rate, 1.0, 2.0).system_time, rel=0.04)
