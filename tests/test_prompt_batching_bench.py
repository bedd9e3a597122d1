"""``benchmarks/prompt_batching.py``'s trace simulation of llama-server's iterations.

With one slot there is never more than one prompt pending and no decoder beside it,
so llama-server's iterations and thinkq's semantics are the same queue, step for step.
With several slots, thinkq's semantics in whole decode steps are the batched kernel's
(continuous, a prompt preempting a step already begun) within about a step a query.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import bench_scripts
from thinkq.batching.kernel import departures

STEPS = {"1": 0.010, "2": 0.014, "3": 0.019, "4": 0.022}
LAW = {"a": 0.0, "b": 0.003}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return bench_scripts.load("prompt_batching")


def trace(rate: float, size: int, seed: int, tokens: int | None = None) -> list[dict[str, float]]:
    """Poisson arrivals with prompts of ``tokens`` (or 80-160) tokens and 1-30 decoded."""
    rng = np.random.default_rng(seed)
    arrive = np.cumsum(rng.exponential(1.0 / rate, size))
    prompt = np.full(size, tokens) if tokens else rng.integers(80, 161, size)
    decoded = rng.integers(1, 31, size)
    return [
        {"arrive": float(a), "prompt_n": int(p), "predicted_n": int(d)}
        for a, p, d in zip(arrive, prompt, decoded, strict=True)
    ]


def test_one_slot_the_two_semantics_are_one_queue(bench: ModuleType) -> None:
    rows = trace(1.2, 3000, seed=1)
    together = bench.simulate(rows, LAW, STEPS, 1, together=True)
    serial = bench.simulate(rows, LAW, STEPS, 1, together=False)
    assert together == serial
    # one slot is FIFO M/G/1 with service a + b x tokens + (decoded - 1) tau(1)
    service = np.array([LAW["b"] * r["prompt_n"] + (r["predicted_n"] - 1) * 0.010 for r in rows])
    arrive = np.array([r["arrive"] for r in rows])
    end, previous = np.empty(len(rows)), 0.0
    for i, (a, s) in enumerate(zip(arrive, service, strict=True)):
        previous = end[i] = max(a, previous) + s
    assert together == pytest.approx(float(np.mean(end - arrive)), rel=1e-9)


def test_serial_semantics_are_the_kernels_within_a_step(bench: ModuleType) -> None:
    rows = trace(1.6, 20_000, seed=2, tokens=120)
    prompt = LAW["b"] * 120
    arrive = np.array([r["arrive"] for r in rows])
    # the kernel's solo time: the prompt, then decoded - 1 steps of one (the prompt's step
    # samples the first token)
    work = prompt + np.array([r["predicted_n"] - 1 for r in rows]) * STEPS["1"]
    table = np.array([STEPS["1"], *STEPS.values()])  # entry 0 is tau(1), as step_table()
    out = departures(arrive, work, slots=4, tau0=0.006, tau1=0.004, table=table, prompt=prompt)
    kernel = float(np.mean(out - arrive))
    serial = bench.simulate(rows, LAW, STEPS, 4, together=False)
    assert serial == pytest.approx(kernel, rel=0.03)
    assert serial != kernel  # whole steps: not the same numbers, only the same queue


def test_prompts_together_matter_only_where_they_meet(bench: ModuleType) -> None:
    """At a light load a prompt rarely meets another or a decoder: the two semantics
    agree. At a high one they part: a step of k prompts ends when all k are done (later
    for the first), while the decoders' tokens ride in it (sooner for them)."""
    light = trace(0.2, 5000, seed=3)
    near = bench.simulate(light, LAW, STEPS, 4, together=True)
    assert near == pytest.approx(bench.simulate(light, LAW, STEPS, 4, together=False), rel=0.01)
    heavy = trace(2.2, 20_000, seed=3)
    together = bench.simulate(heavy, LAW, STEPS, 4, together=True)
    serial = bench.simulate(heavy, LAW, STEPS, 4, together=False)
    assert abs(together / serial - 1.0) > 0.05
