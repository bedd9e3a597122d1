"""The fleet model (``docs/fleet.md``): c one-slot replicas behind one FIFO queue, M/G/c.

:func:`thinkq.batching.fleet.replicated` makes the fleet a batched server with c
slots and perfect batching; these tests check that this *is* M/G/c (Erlang C with
exponential service, against an independent formula and the simulator), that the
model's mean system time lies within the simulator's interval at c = 2, 3 and
several loads, that the solver optimises the fleet, and what is refused.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from thinkq import ProfileError, model, paper_profile, simulate, solve
from thinkq.batching import Server, delay
from thinkq.batching.fleet import replicated

#: Moderate budgets (tokens) on the paper's six types: a service mix with cs^2 0.45.
BUDGETS = np.array([800.0, 200.0, 400.0, 100.0, 300.0, 150.0])


def erlang_c_system_time(c: int, rate: float, mean: float) -> float:
    """M/M/c's mean system time from Erlang's C formula (independent of thinkq)."""
    rho = rate * mean
    top = rho**c / math.factorial(c) * c / (c - rho)
    wait_probability = top / (sum(rho**k / math.factorial(k) for k in range(c)) + top)
    return mean + wait_probability * mean / (c - rho)


def test_one_replica_is_the_server_itself() -> None:
    server = Server(slots=1, tau0=0.02, tau1=0.0)
    assert replicated(None, 1) is None
    assert replicated(server, 1) is server
    batched = Server(slots=4, tau0=0.01, tau1=0.002)
    assert replicated(batched, 1) is batched


def test_c_one_slot_replicas_are_c_slots_at_full_speed() -> None:
    fleet = replicated(Server(slots=1, tau0=0.02, tau1=0.01), 3)
    assert fleet == Server(slots=3, tau0=0.03, tau1=0.0)
    assert fleet is not None
    assert [fleet.capacity(n) for n in (1, 2, 3, 5)] == [1.0, 2.0, 3.0, 3.0]
    assert replicated(None, 2) == Server(slots=2, tau0=1.0, tau1=0.0)


@pytest.mark.parametrize("c", [2, 3])
@pytest.mark.parametrize("load", [0.3, 0.6, 0.85])
def test_the_fleet_with_exponential_service_is_erlang_c(c: int, load: float) -> None:
    fleet = replicated(None, c)
    assert fleet is not None
    rate = load * c  # E[S] = 1 s
    assert delay(fleet, rate, 1.0, 2.0).system_time == pytest.approx(
        erlang_c_system_time(c, rate, 1.0), rel=1e-9
    )


@pytest.mark.parametrize("c", [2, 3])
def test_the_simulated_fleet_with_exponential_service_is_erlang_c(c: int) -> None:
    from thinkq.batching.kernel import departures

    rng = np.random.default_rng(c)
    rate, size = 0.7 * c, 400_000
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size))
    fleet = replicated(None, c)
    assert fleet is not None
    work = rng.exponential(1.0, size)
    leave = departures(arrivals, work, slots=fleet.slots, tau0=fleet.tau0, tau1=fleet.tau1)
    system = (leave - arrivals)[size // 10 :]
    batches = system[: system.size // 20 * 20].reshape(20, -1).mean(axis=1)
    half = 2.1 * batches.std(ddof=1) / math.sqrt(20)
    assert abs(system.mean() - erlang_c_system_time(c, rate, 1.0)) < half


@pytest.mark.parametrize("c", [2, 3])
@pytest.mark.parametrize("load", [0.3, 0.6, 0.85])
def test_the_fleet_model_is_within_the_simulators_interval(c: int, load: float) -> None:
    base = paper_profile()
    point = base.with_server(replicated(base.server, c))
    rate = load * c / model.moments(point, BUDGETS).mean
    point = point.replace(rate=rate)
    result = simulate(point, BUDGETS, queries=400_000, seed=10 * c + round(10 * load))
    predicted = model.system_time(point, BUDGETS)
    low, high = result.mean_system_time_ci
    print(f"c={c} load={load}: model {predicted:.4f} s, simulated {result.mean_system_time:.4f}")
    assert result.analytic_mean_system_time == pytest.approx(predicted)
    assert model.utilization(point, BUDGETS) == pytest.approx(load)
    assert low <= predicted <= high


def test_the_solver_optimises_the_fleet() -> None:
    base = paper_profile().replace(rate=0.25)
    alone, two = solve(base), solve(base.with_server(replicated(None, 2)))
    assert two.continuous.converged
    # the same load on twice the capacity waits less: the budgets can grow
    assert np.all(two.budgets >= alone.budgets)
    assert np.any(two.budgets > alone.budgets)
    point = base.with_server(replicated(None, 2))
    assert model.objective(point, two.budgets) >= model.objective(point, alone.budgets)


def test_replicas_of_a_batched_server_are_refused() -> None:
    with pytest.raises(ProfileError, match=r"server\.slots.*2 replicas of a batched server"):
        replicated(Server(slots=4, tau0=0.01, tau1=0.002), 2)
    with pytest.raises(ValueError, match="replicas"):
        replicated(None, 0)
