"""Synthetic measurement records drawn from a known profile.

Use them to plan a measurement before paying for it (how many items and budgets give
intervals narrow enough?) and to test the fits against known parameters. Each record
is what a budget-forced run would log: every (item, budget, run) is answered
correctly with probability p_k(l) (eq. 2), independently, and takes

    latency = c l G + t0 X  (+ a stall with probability ``stall_share``),

with G a Gamma variable of mean 1 and coefficient of variation ``token_cv`` (decode
speed jitter) and X one of mean 1 and ``answer_cv`` (answer length): the mean is
t(l) = t0 + c l (eq. 1). A stall multiplies the latency by a uniform factor in
``stall_factor``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thinkq._files import write_atomic
from thinkq._typing import FloatArray
from thinkq.profile import Profile

__all__ = ["sample_records", "sample_server_records", "write_jsonl"]


def _gamma(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    if cv <= 0:
        return np.ones(size)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / shape, size)


def sample_records(
    profile: Profile,
    budgets: Sequence[int],
    *,
    items: int = 250,
    runs: int = 3,
    seed: int | None = None,
    answer_cv: float = 0.3,
    token_cv: float = 0.02,
    stall_share: float = 0.0,
    stall_factor: tuple[float, float] = (3.0, 10.0),
    model_name: str = "synthetic",
) -> list[dict[str, Any]]:
    """Records for every task, budget, item and run of ``profile`` (a list of dicts).

    The records carry ``task``, ``budget``, ``correct``, ``latency_s``,
    ``thinking_tokens`` (= the budget), ``answer_tokens``, ``item_id``, ``run`` and
    ``model``.
    """
    if items < 1 or runs < 1:
        raise ValueError("items, runs: expected at least one of each")
    if not 0 <= stall_share < 1:
        raise ValueError(f"stall_share: expected a share in [0, 1), got {stall_share!r}")
    rng = np.random.default_rng(seed)
    l = np.repeat(np.asarray(budgets, dtype=np.float64), items * runs)
    item = np.tile(np.repeat(np.arange(items), runs), len(budgets))
    run = np.tile(np.arange(runs), items * len(budgets))
    size = l.size
    out: list[dict[str, Any]] = []
    for k, name in enumerate(profile.names):
        p = profile.A[k] * -np.expm1(-profile.b[k] * l) + profile.D[k]
        correct = rng.random(size) < p
        latency = profile.c[k] * l * _gamma(rng, token_cv, size) + profile.t0[k] * _gamma(
            rng, answer_cv, size
        )
        stalled = rng.random(size) < stall_share
        latency = np.where(stalled, latency * rng.uniform(*stall_factor, size), latency)
        answer_tokens = rng.poisson(40, size)
        out += [
            {
                "task": name,
                "budget": int(l[i]),
                "correct": bool(correct[i]),
                "latency_s": float(latency[i]),
                "thinking_tokens": int(l[i]),
                "answer_tokens": int(answer_tokens[i]),
                "item_id": f"{name}-{item[i]:04d}",
                "run": int(run[i]),
                "model": model_name,
            }
            for i in range(size)
        ]
    return out


def sample_server_records(
    tau0: float,
    tau1: float,
    *,
    slots: int,
    per_level: int = 32,
    tau2: float = 0.0,
    budget: int = 64,
    step_cv: float = 0.05,
    seed: int | None = None,
    task: str = "synthetic",
    model_name: str = "synthetic",
    levels: Sequence[int] | None = None,
    law: Callable[[FloatArray], FloatArray] | None = None,
) -> list[dict[str, Any]]:
    """Server-phase records (``thinkq profile --slots``) of a known step-time law.

    At each level n = 1, 2, 4, ..., ``slots`` (or ``levels``), ``per_level`` queries of
    ``budget`` thinking tokens see a batch b (n, a little less for a quarter of them,
    as at the end of a closed loop) and decode at tau0 + tau1 b + tau2 b^2 seconds per
    step (or ``law(b)``), times a Gamma variable of mean 1 and coefficient of variation
    ``step_cv``; the prompt and the answer take 16 steps more, slowed alike (the
    batched model's semantics).
    """
    rng = np.random.default_rng(seed)
    if levels is None:
        levels = [2**k for k in range(max(slots - 1, 0).bit_length())] + [slots]
    out: list[dict[str, Any]] = []
    for level in levels:
        tail = rng.random(per_level) < 0.25
        batch = np.where(tail, np.maximum(level - rng.uniform(0, level - 1, per_level), 1), level)
        steps = tau0 + tau1 * batch + tau2 * batch * batch if law is None else law(batch)
        step = steps * _gamma(rng, step_cv, per_level)
        out += [
            {
                "phase": "server",
                "task": task,
                "item_id": f"{task}-{i:04d}",
                "budget": budget,
                "run": 0,
                "concurrency": level,
                "slots": slots,
                "correct": False,
                "latency_s": float(step[i] * (budget + 16)),
                "thinking_tokens": budget,
                "batch": float(batch[i]),
                "think_s": float(step[i] * budget + 0.01),
                "predicted_ms": float(step[i] * budget * 1e3),
                "predicted_n": budget,
                "model": model_name,
                "error": None,
            }
            for i in range(per_level)
        ]
    return out


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON lines (atomically)."""
    return write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
