"""What llama.cpp's prompt processing does to the batched model: an exact simulation.

thinkq's batched semantics (``docs/batching.md``) slow a query's whole solo time by
tau(n) / tau(1) while n are in service. llama.cpp's ``llama-server`` does something
else with the prompt: a query that takes a slot has its prompt computed in the next
step, at full speed, and the sequences decoding in that step wait for it (a step with a
prompt of P tokens takes tau(n) plus the prompt's time). Prefill does not share in the
batching gain, and it stalls the batch. This script simulates those semantics exactly,
event by event:

* a query of solo time s = p + d has a prompt of p seconds and a decode of d;
* FIFO for the B slots; a query that takes a slot joins the prompts, which the server
  computes one at a time at full speed, in order, while every decoding sequence waits;
* with no prompt pending, each of the n decoding sequences advances at tau(1) / tau(n);

and reports, for the B-slot runs of ``benchmarks/batch_fidelity.py`` (a result file in
``docs/profiling``: its rate, budgets, calibrated profile and latency lines), the mean
system time simulated with each prompt costing a share of its uncached time
(``--shares``; 0 is thinkq's semantics, and agrees with thinkq's model), beside the
run's measurement and model. The uncached times (``--prefill``, seconds per type) are
llama-server's own ``prompt_ms`` for each type's prompts sent alone with
``cache_prompt`` off (``--measure URL --data-dir DIR`` measures them: the median of 12).
In the runs the prompts were partly cached (the chat template's common prefix, and
prompts drawn again land on the slot that holds them), which is why a share is scanned.

Run: ``python benchmarks/batch_prefill.py --runs docs/profiling/batch_fidelity_throughput.json
--prefill 0.302,0.289`` (results in ``docs/batching.md``). Each share also gets the
batched model under the two-phase law of the first order (:func:`mixed`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections import deque
from pathlib import Path
from typing import Any, NoReturn

import httpx
import numpy as np

import thinkq
from thinkq.batching import delay
from thinkq.batching.server import Server
from thinkq.errors import ThinkqError
from thinkq.profile import profile_from_dict

#: Queries simulated per point (after a tenth more as warm-up), and replications.
QUERIES = 200_000
REPLICATIONS = 4


def simulate(
    rate: float,
    shares: np.ndarray,
    solo: np.ndarray,
    variance: np.ndarray,
    prefill: np.ndarray,
    server: Server,
    queries: int,
    rng: np.random.Generator,
) -> float:
    """Mean system time of ``queries`` Poisson arrivals under the prefill semantics.

    Type k's solo time is ``prefill[k]`` seconds of prompt, then a decode of gamma
    distributed length with mean ``solo[k] - prefill[k]`` and the type's ``variance``
    (the profile's: the solo times' spread).
    """
    warm = queries // 10
    total = queries + warm
    arrivals = np.cumsum(rng.exponential(1.0 / rate, total))
    types = rng.choice(len(shares), size=total, p=shares)
    prompt = prefill[types]
    mean = np.maximum(solo - prefill, 1e-9)
    scale = np.maximum(variance, 1e-12) / mean  # gamma: shape mean / scale
    decode = rng.gamma((mean / scale)[types], scale[types])
    return float(np.mean(serve(arrivals, prompt, decode, server)[warm:]))


def serve(
    arrivals: np.ndarray, prompt: np.ndarray, decode: np.ndarray, server: Server
) -> np.ndarray:
    """Each query's system time under the prefill semantics (the module docstring): it
    arrives at ``arrivals`` (sorted) with ``prompt`` seconds of prompt and ``decode``
    solo seconds of decode."""
    total = arrivals.size
    slowdown = [math.nan] + [
        server.step_time(n) / server.step_time(1) for n in range(1, server.slots + 1)
    ]
    now, clock = 0.0, 0.0  # time, and the decoders' virtual clock (solo seconds)
    waiting: deque[int] = deque()
    prompts: deque[int] = deque()
    left = 0.0  # of the first prompt
    decoders: list[tuple[float, int]] = []  # (virtual finish, query)
    system = np.full(total, np.nan)
    i = 0

    def start(q: int) -> None:
        nonlocal left
        if not prompts:
            left = prompt[q]
        prompts.append(q)

    while i < total or prompts or decoders or waiting:
        arrival = arrivals[i] if i < total else math.inf
        if prompts:
            done = now + left
        elif decoders:
            done = now + (decoders[0][0] - clock) * slowdown[len(decoders)]
        else:
            done = math.inf
        if arrival <= done:  # an arrival first
            elapsed = arrival - now
            if prompts:
                left -= elapsed
            elif decoders:
                clock += elapsed / slowdown[len(decoders)]
            now = arrival
            if len(prompts) + len(decoders) < server.slots:
                start(i)
            else:
                waiting.append(i)
            i += 1
            continue
        if prompts:  # a prompt is done: its query decodes
            now = done
            q = prompts.popleft()
            heapq.heappush(decoders, (clock + decode[q], q))
            if prompts:
                left = prompt[prompts[0]]
            continue
        clock, now = decoders[0][0], done  # a query is done
        _, q = heapq.heappop(decoders)
        system[q] = now - arrivals[q]
        if waiting:
            start(waiting.popleft())
    return system


Row = dict[str, Any]


def points(runs: Row) -> list[tuple[str, thinkq.Profile, Row]]:
    """The B-slot runs of a batch_fidelity result file, each with the calibrated profile."""
    calibrated = profile_from_dict(runs["calibration"]["profile"])
    found = []
    for name, row in runs.items():
        if name == "calibration" or not isinstance(row, dict) or row.get("concurrency", 1) == 1:
            continue
        latency = row.get("live_latency") or {}
        found.append((name, calibrated, row | {"_latency": latency}))
    return found


def measure_prefill(url: str, data_dir: Path, names: tuple[str, ...], count: int) -> np.ndarray:
    """llama-server's ``prompt_ms`` (median, seconds) for each type's first prompts."""
    from thinkq.serve.loadtest import load_prompts

    prompts = load_prompts(list(names), data_dir=data_dir, n=count, seed=0)
    found = []
    with httpx.Client(timeout=120) as client:
        for name in names:
            times = []
            for text in prompts[name]:
                body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1,
                        "cache_prompt": False}  # fmt: skip
                reply = client.post(f"{url}/v1/chat/completions", json=body).json()
                times.append(reply["timings"]["prompt_ms"] / 1e3)
            found.append(float(np.median(times)))
    return np.array(found)


def usage(why: str) -> NoReturn:
    """A usage error: one line, exit status 2."""
    print(f"error: {why}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="A batch_fidelity result file.")
    parser.add_argument("--prefill", help="Seconds of prompt per type, comma-separated.")
    parser.add_argument("--measure", metavar="URL", help="Measure them on this llama-server.")
    parser.add_argument("--data-dir", type=Path, help="The datasets (with --measure).")
    parser.add_argument(
        "--shares",
        default="0,0.1,0.2,0.3,0.5,1",
        help="Fractions of each prompt's uncached time that a query pays (0: thinkq's semantics).",
    )
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        args.shares = [float(x) for x in args.shares.split(",")]
    except ValueError:
        usage(f"--shares: not numbers: {args.shares!r}")
    if not all(x >= 0 for x in args.shares):
        usage(f"--shares: each must be >= 0, got {args.shares}")
    if args.queries < 1:
        usage(f"--queries: must be >= 1, got {args.queries}")
    try:
        runs = json.loads(args.runs.read_text())
    except (OSError, ValueError) as exc:
        usage(f"--runs: {exc}")
    try:
        found = points(runs)
    except (KeyError, TypeError, AttributeError, ThinkqError) as exc:
        usage(f"--runs: not a batch_fidelity result file ({exc!r})")
    if not found:
        usage("--runs: no run with several slots in the file")
    names = found[0][1].names
    if args.measure:
        if args.data_dir is None:
            usage("--measure needs --data-dir")
        try:
            prefill = measure_prefill(args.measure.rstrip("/"), args.data_dir, names, 12)
        except (httpx.HTTPError, ThinkqError, KeyError, ValueError) as exc:
            sys.exit(f"error: --measure: {exc}")  # the server, not the input: 1
    elif args.prefill:
        try:
            prefill = np.array([float(x) for x in args.prefill.split(",")])
        except ValueError:
            usage(f"--prefill: not numbers: {args.prefill!r}")
        if prefill.size != len(names) or not np.all(prefill >= 0):
            usage(f"--prefill: one time >= 0 per type ({', '.join(names)})")
    else:
        usage("give --prefill or --measure")
    print("prompt seconds per type:", dict(zip(names, np.round(prefill, 4).tolist(), strict=True)))
    rng = np.random.default_rng(args.seed)
    for name, profile, row in found:
        budgets = np.array([row["budgets"][n] for n in names], float)
        latency = row["_latency"]
        t0 = np.array([latency[n]["t0"] for n in names]) if latency else profile.t0
        c = np.array([latency[n]["c"] for n in names]) if latency else profile.c
        solo = t0 + c * budgets
        server = profile.server
        assert server is not None
        rate = row["offered_rate"]
        m1 = float(profile.share @ solo)
        m2 = float(profile.share @ (solo**2 + profile.variance))
        model = delay(server, rate, m1, m2).system_time
        low, high = row.get("measured_mean_95", [math.nan, math.nan])
        print(f"\n{name}: rate {rate:.3f}/s, {server.slots} slots, mean solo {m1:.3f} s")
        print(f"  measured {row['measured_mean']:.3f} s [{low:.3f}, {high:.3f}]; "
              f"the run's batched model {row['model_mean']:.3f} s; here {model:.3f} s")  # fmt: skip
        for share in args.shares:
            p = np.minimum(share * prefill, solo)
            values = [simulate(rate, profile.share, solo, profile.variance, p, server,
                               args.queries, rng) for _ in range(REPLICATIONS)]  # fmt: skip
            law = mixed(server, rate, m1, m2, float(profile.share @ p) / m1)
            print(
                f"  simulated, prompts {share:4.2f} of their uncached time: "
                f"{np.mean(values):8.3f} s (sd of {REPLICATIONS} runs "
                f"{np.std(values, ddof=1):.3f}); two-phase law {law}"
            )


def mixed(server: Server, rate: float, m1: float, m2: float, f: float) -> str:
    """The batched model's mean system time (s) under the two-phase law of the first
    order: a share ``f`` of the work is prompt, done at speed 1, the rest at C(n), so
    C_f(n) = n / (n f + (1 - f) tau(n) / tau(1)), the step table
    tau_f(n) = n f tau(1) + (1 - f) tau(n) (``docs/batching.md``, fourth run)."""
    one = server.step_time(1)
    steps = tuple(
        (n, n * f * one + (1 - f) * server.step_time(n)) for n in range(1, server.slots + 1)
    )
    law = Server(slots=server.slots, tau0=server.tau0, tau1=server.tau1, steps=steps)
    try:
        return f"{delay(law, rate, m1, m2).system_time:.3f} s"
    except (ThinkqError, ValueError):
        return "unstable"


if __name__ == "__main__":
    main()
