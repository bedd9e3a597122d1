"""The prompt's stall as a Markov chain: the exact model of llama.cpp's prompt semantics.

``benchmarks/batch_prefill.py`` simulates what llama-server does with a prompt: a query
that takes a slot has its prompt computed at full speed, one prompt at a time, while
every decoding sequence waits; then it decodes at tau(1) / tau(n) with n decoding.
With exponential prompt and decode times those semantics are a Markov chain on
(N, j): N queries in the system, j of the min(N, B) in service still in their prompt.

* an arrival (rate lambda) takes a slot and joins the prompts if one is free;
* with j > 0 the first prompt ends at rate 1 / p, and its query starts decoding;
* with j = 0 and m = min(N, B) decoding, one of them ends at rate
  m tau(1) / (tau(m) d), and the first query waiting (if any) takes its slot.

The chain is truncated at ``--states`` queries and solved for its stationary law;
E[T] = E[N] / lambda (Little). This script checks it against an event simulation of
the same exponential semantics and prints, for the same service (mean p + d,
exponential), thinkq's single-phase batched model and the model under the two-phase
law of the first order (``batch_prefill.mixed``). Defaults: the mean-batch-3 run of
``docs/batching.md`` (fourth run): 12.99 queries/s, a solo time of 0.078 s of which
0.0296 s is prompt, the steps of ``benchmarks/smollm2_batched4.toml``.

Run: ``python benchmarks/prefill_chain.py`` (results in ``docs/batching.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as linalg

import thinkq
from thinkq.batching import delay
from thinkq.batching.server import Server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_prefill import mixed, serve


def chain(rate: float, prompt: float, decode: float, server: Server, states: int) -> float:
    """E[T] of the (N, j) chain (see the module), truncated at ``states`` in the system."""
    slots = server.slots
    speed = [0.0] + [server.step_time(1) / server.step_time(n) for n in range(1, slots + 1)]
    stage = 1 if prompt > 0 else 0  # without a prompt a query decodes at once
    index = {(n, j): 0 for n in range(states + 1) for j in range(stage * min(n, slots) + 1)}
    for i, key in enumerate(index):
        index[key] = i
    rows: list[int] = []
    cols: list[int] = []
    rates: list[float] = []
    for (n, j), i in index.items():
        busy = min(n, slots)
        moves = []
        if n < states:  # an arrival
            moves.append(((n + 1, j + stage if busy < slots else j), rate))
        if j > 0:  # the first prompt ends
            moves.append(((n, j - 1), 1.0 / prompt))
        elif busy > 0:  # a decoder ends; the first waiting query starts its prompt
            moves.append(((n - 1, stage if n > slots else 0), busy * speed[busy] / decode))
        for target, value in moves:
            rows.append(i)
            cols.append(index[target])
            rates.append(value)
    size = len(index)
    q = sparse.csr_matrix((rates, (rows, cols)), shape=(size, size))
    q = q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())
    system = q.T.tolil()
    system[0, :] = 1.0  # the probabilities sum to one
    right = np.zeros(size)
    right[0] = 1.0
    law = linalg.spsolve(system.tocsr(), right)
    return float(sum(law[i] * n for (n, _), i in index.items())) / rate


def simulate(
    rate: float, prompt: float, decode: float, server: Server, queries: int, seed: int
) -> float:
    """Mean system time of the same semantics, event by event (a tenth as warm-up)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, queries))
    prompts, decodes = rng.exponential(prompt, queries), rng.exponential(decode, queries)
    return float(np.mean(serve(arrivals, prompts, decodes, server)[queries // 10 :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile", type=Path, default=Path(__file__).parent / "smollm2_batched4.toml"
    )
    parser.add_argument("--rate", type=float, default=12.988, help="Queries a second.")
    parser.add_argument("--solo", type=float, default=0.078, help="Mean solo time (s).")
    parser.add_argument("--prompt", type=float, default=0.0296, help="Its prompt (s).")
    parser.add_argument("--states", type=int, default=400, help="Truncation of N.")
    parser.add_argument("--queries", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not 0 <= args.prompt < args.solo:
        parser.error(f"--prompt: in [0, --solo), got {args.prompt}")
    if args.rate <= 0 or args.states < 10 or args.queries < 10 or args.runs < 1:
        parser.error("--rate > 0, --states >= 10, --queries >= 10 and --runs >= 1")
    try:
        server = thinkq.load_profile(args.profile).server
    except thinkq.ThinkqError as exc:
        parser.error(str(exc))
    if server is None or server.slots < 2:
        parser.error(f"--profile: {args.profile} has no [server] table with slots > 1")
    decode = args.solo - args.prompt
    m1, m2 = args.solo, 2.0 * args.solo**2
    print(f"{server.slots} slots, rate {args.rate}/s, solo {m1} s, prompt {args.prompt} s")
    # saturated, the slots alternate prompts (speed 1) and B decoders (C(B)): the mix
    f, top = args.prompt / m1, server.slots * server.step_time(1) / server.step_time(server.slots)
    capacity = 1.0 / (f + (1.0 - f) / top)
    if args.rate * m1 >= capacity:
        print(f"  unstable: a load of {args.rate * m1:.4g} against a capacity of {capacity:.4g}")
        return
    exact = chain(args.rate, args.prompt, decode, server, args.states)
    print(f"  the (N, j) chain:            {exact:.4f} s")
    runs = [
        simulate(args.rate, args.prompt, decode, server, args.queries, s) for s in range(args.runs)
    ]
    print(
        f"  its semantics simulated:     {np.mean(runs):.4f} s (runs {np.round(runs, 4).tolist()})"
    )
    print(f"  two-phase law (first order): {mixed(server, args.rate, m1, m2, args.prompt / m1)}")
    print(f"  thinkq's single-phase model: {delay(server, args.rate, m1, m2).system_time:.4f} s")


if __name__ == "__main__":
    main()
