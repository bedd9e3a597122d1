"""Search for instances on which the paper's plain fixed point (24) does not converge.

Run from the repository root (it rewrites tests/hard_instances.json)::

    python tests/find_hard_instances.py [--count 8] [--seed 2601]

The search is seeded and deterministic. It draws profiles at high load (utilisation
0.3-0.95 at zero budgets), large accuracy weight (alpha 1e1-1e4) and per-token times
c_k spread over three orders of magnitude, and keeps those where
``solve(..., method="fixed-point")`` reports ``converged=False``: half of them where
the iteration leaves the stability region (divergence), half where it runs to its
iteration limit without settling (oscillation). Nothing else is
filtered: in particular not whether the default solver converges, which is what
test_solve.py checks on them. Each saved instance is a profile in the file format
(rate, alpha, max_tokens, tasks with name, share, A, b, D, t0, c); the fixed point's
stopping message is saved alongside.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import thinkq
from thinkq import Profile

OUTPUT = Path(__file__).with_name("hard_instances.json")


def draw(rng: np.random.Generator) -> Profile:
    """High load, large alpha, unequal c: where the fixed-point map is far from contractive."""
    n = int(rng.integers(2, 21))
    a = rng.uniform(0.1, 1.0, n)
    d = rng.uniform(0.0, 1.0, n) * (1.0 - a)
    b = 10.0 ** rng.uniform(-4.0, -1.0, n)
    t0 = rng.uniform(0.01, 1.0, n)
    c = 10.0 ** rng.uniform(-4.0, -1.0, n)
    share = rng.gamma(1.0, 1.0, n)
    share = share / share.sum()
    load = rng.uniform(0.3, 0.95)
    return Profile.from_arrays(
        names=[f"type{k}" for k in range(n)],
        share=share,
        A=a,
        b=b,
        D=d,
        t0=t0,
        c=c,
        rate=load / float(np.dot(share, t0)),
        alpha=float(10.0 ** rng.uniform(1.0, 4.0)),
        max_tokens=int(rng.choice([4096, 32768])),
    )


def file_form(profile: Profile) -> dict[str, Any]:
    """The profile as the file format's dict (floats rounded-trip exactly by JSON)."""
    columns = {
        key: [float(x) for x in getattr(profile, key)]
        for key in ("share", "A", "b", "D", "t0", "c")
    }
    return {
        "rate": float(profile.rate),
        "alpha": float(profile.alpha),
        "max_tokens": int(profile.max_tokens),
        "tasks": [
            {"name": name, **{key: columns[key][k] for key in columns}}
            for k, name in enumerate(profile.names)
        ],
    }


def search(count: int, seed: int, limit: int = 5000) -> tuple[list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    quota = {"diverged": count - count // 2, "oscillates": count // 2}
    found: list[dict[str, Any]] = []
    messages: list[str] = []
    for trial in range(limit):
        profile = draw(rng)
        result = thinkq.solve(profile, method="fixed-point").continuous
        if result.converged:
            continue
        kind = "diverged" if "stability" in result.message else "oscillates"
        if quota[kind] == 0:
            continue
        quota[kind] -= 1
        found.append(file_form(profile))
        messages.append(f"trial {trial}: {kind}: {result.message}")
        print(messages[-1], f"(N={profile.size})")
        if len(found) == count:
            break
    return found, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2601)
    args = parser.parse_args()
    found, messages = search(args.count, args.seed)
    data = {
        "about": (
            "Instances where the plain fixed point (24) does not converge; "
            "written by tests/find_hard_instances.py"
        ),
        "seed": args.seed,
        "fixed_point": messages,
        "instances": found,
    }
    OUTPUT.write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    print(f"wrote {len(found)} instances to {OUTPUT.name}")


if __name__ == "__main__":
    main()
