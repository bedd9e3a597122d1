"""How llama-server computes prompts that arrive together, and what that does to the queue.

thinkq's prompt stage (``docs/batching.md``) computes one prompt at a time while the
decoding sequences wait. llama-server does something else: each iteration of its loop
takes one token of every decoding slot and *every* pending prompt into one batch
(``update_slots``: "batch any pending prompts without exceeding n_batch"). Two things
differ where prompts meet: k prompts computed together may cost less than k alone (then
thinkq overstates the stall near capacity), and the decoders' tokens ride in a prompt's
step instead of waiting for it.
This script measures it on a running server, in three parts:

* ``together``: k = 1 .. ``--slots`` new prompts (tagged, so no cache holds them) sent at
  once to the idle server, ``--rounds`` times; the wall time against the step's prompt
  tokens, and the seconds per token at each k;
* ``decode``: n = 1 .. ``--slots`` requests decoding ``--decode-tokens`` tokens at once
  (``ignore_eos``): the step time tau(n) from llama-server's ``predicted_ms``;
* ``replay``: Poisson arrivals at ``--rate`` straight to the server (its own FIFO for the
  slots), ``--queries`` new prompts with ``--max-tokens`` each; then the same trace (each
  query's arrival, prompt tokens and decoded tokens) through an exact simulation of
  llama-server's iterations (a step costs a + b x its tokens with a prompt in it, tau(n)
  without) and of thinkq's semantics (the same prompts one at a time, the decoders
  waiting), beside the measured mean with its 95 % interval (ten batch means).

Every part is written to ``--out`` (JSON) as it ends; a rerun skips the parts there.
Run (a server as in ``docs/batching.md``)::

    python benchmarks/prompt_batching.py --base-url http://127.0.0.1:8301/v1 \\
        --data-dir DIR --rate 1.8 --out prompt_batching.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from thinkq.measure.templates import get_template
from thinkq.serve.loadtest import load_prompts

Row = dict[str, Any]
TASKS = ["ARC-Challenge", "GSM8K"]


async def complete(client: httpx.AsyncClient, prompt: str, **extra: Any) -> Row:
    """One /completions request at temperature 0: llama-server's timings."""
    body = {"model": "smollm2", "prompt": prompt, "temperature": 0, **extra}
    reply = await client.post("/completions", json=body)
    reply.raise_for_status()
    timings: Row = reply.json()["timings"]
    return timings


def texts(args: argparse.Namespace, count: int) -> list[str]:
    """``count`` benchmark questions of both types (in a random order, again from the
    start when they run out), rendered by the chat template with a tag
    ``[query <hex>-<i>]`` new for every call, so that no slot or host cache holds them."""
    template = get_template("chatml")
    assert template is not None
    prompts = load_prompts(TASKS, data_dir=args.data_dir, n=300, seed=0)
    tag = secrets.token_hex(4)
    questions = [q for name in TASKS for q in prompts[name]]
    order = np.random.default_rng(args.seed).permutation(len(questions))
    return [
        template.render([{"role": "user", "content": f"[query {tag}-{i}] {questions[k]}"}])
        for i, k in enumerate(np.resize(order, count))
    ]


async def together(args: argparse.Namespace) -> Row:
    """k new prompts at once, k = 1 .. slots, ``args.rounds`` times: (k, tokens, wall)."""
    prompts, rows = iter(texts(args, args.rounds * args.slots * (args.slots + 1) // 2)), []
    async with httpx.AsyncClient(base_url=args.base_url, timeout=600) as client:
        for _ in range(args.rounds):
            for k in range(1, args.slots + 1):
                batch = [next(prompts) for _ in range(k)]
                start = time.perf_counter()
                got = await asyncio.gather(*(complete(client, p, max_tokens=1) for p in batch))
                wall = time.perf_counter() - start
                rows.append([k, sum(t["prompt_n"] for t in got), wall])
                await asyncio.sleep(0.2)
    data = np.array(rows, dtype=float)
    design = np.column_stack([np.ones(len(data)), data[:, 1]])
    (a, b), *_ = np.linalg.lstsq(design, data[:, 2], rcond=None)
    per_token = {
        str(k): float(np.mean(data[data[:, 0] == k, 2] / data[data[:, 0] == k, 1]))
        for k in range(1, args.slots + 1)
    }
    return {"rows": rows, "a": float(a), "b": float(b), "seconds_per_token": per_token}


async def decode(args: argparse.Namespace) -> Row:
    """tau(n): n requests decoding ``args.decode_tokens`` tokens at once (short prompts,
    ``ignore_eos``), the mean of llama-server's predicted_ms / predicted_n, 3 times."""
    steps = {}
    async with httpx.AsyncClient(base_url=args.base_url, timeout=600) as client:
        for n in range(1, args.slots + 1):
            seen = []
            for _ in range(3):
                got = await asyncio.gather(
                    *(
                        complete(client, f"Count: {j}", max_tokens=args.decode_tokens,
                                 ignore_eos=True)
                        for j in range(n)
                    )
                )  # fmt: skip
                seen += [t["predicted_ms"] / t["predicted_n"] / 1000 for t in got]
            steps[str(n)] = float(np.mean(seen))
    return steps


async def replay(args: argparse.Namespace) -> list[Row]:
    """Poisson arrivals at ``args.rate`` straight to the server: arrival, end, timings."""
    rng = np.random.default_rng(args.seed + 1)
    gaps = rng.exponential(1.0 / args.rate, args.queries)
    prompts, rows = texts(args, args.queries), []

    async def one(i: int, start: float) -> None:
        arrive = time.perf_counter() - start
        got = await complete(client, prompts[i], max_tokens=args.max_tokens)
        end = time.perf_counter() - start
        rows.append({"arrive": arrive, "end": end, "prompt_n": got["prompt_n"],
                     "predicted_n": got["predicted_n"]})  # fmt: skip

    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=3600, limits=limits) as client:
        start, at, tasks = time.perf_counter(), 0.0, []
        for i, gap in enumerate(gaps):
            at += gap
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
            tasks.append(asyncio.create_task(one(i, start)))
        await asyncio.gather(*tasks)
    return sorted(rows, key=lambda r: r["arrive"])


# long: one event loop over llama-server's iterations (admit, one step, the finished)
def simulate(trace: list[Row], law: Row, steps: Row, slots: int, together: bool) -> float:
    """Mean system time of the trace: llama-server's iterations (``together``: every
    pending prompt in one step of a + b x tokens, the decoders' tokens in it too) or
    thinkq's semantics (one prompt at a time, a + b x its tokens, the decoders waiting);
    without a prompt pending, a step of tau(n) advances each of the n decoders a token."""
    arrive = np.array([r["arrive"] for r in trace])
    tokens = np.array([r["prompt_n"] for r in trace], dtype=float)
    left = {i: max(int(r["predicted_n"]), 1) for i, r in enumerate(trace)}
    a, b = law["a"], law["b"]
    done = np.zeros(len(trace))
    queue: deque[int] = deque()
    prompting: list[int] = []
    decoding: list[int] = []
    now, nxt = 0.0, 0
    while nxt < len(trace) or queue or prompting or decoding:
        while nxt < len(trace) and arrive[nxt] <= now:
            queue.append(nxt)
            nxt += 1
        while queue and len(prompting) + len(decoding) < slots:
            prompting.append(queue.popleft())
        if not prompting and not decoding:
            now = arrive[nxt]
            continue
        if prompting:
            first = prompting if together else prompting[:1]
            extra = len(decoding) if together else 0
            now += a + b * (tokens[first].sum() + extra)
            advanced = decoding if together else []
        else:
            first = []
            now += steps[str(min(len(decoding), slots))]
            advanced = decoding
        for i in [*advanced, *first]:  # a prompt's step samples its first token
            left[i] -= 1
        prompting = [i for i in prompting if i not in first]
        decoding = [i for i in [*decoding, *first] if left[i] > 0]
        for i in (i for i in [*advanced, *first] if left[i] <= 0):
            done[i] = now
    return float(np.mean(done - arrive))


def report(done: Row, slots: int) -> None:
    """The three parts as text."""
    law = done["together"]
    print(f"prompts at once: wall = {law['a'] * 1000:.1f} ms + {law['b'] * 1000:.3f} ms/token")
    for k, s in law["seconds_per_token"].items():
        print(f"  k = {k}: {s * 1000:.3f} ms per prompt token (wall / tokens)")
    print(
        "decode steps: "
        + ", ".join(f"tau({n}) {s * 1000:.2f} ms" for n, s in done["decode"].items())
    )
    for name, row in done.items():
        if not name.startswith("replay"):
            continue
        times = np.array([r["end"] - r["arrive"] for r in row])
        means = [float(np.mean(part)) for part in np.array_split(times, 10)]
        half = 2.262 * float(np.std(means, ddof=1)) / np.sqrt(10)
        measured = float(np.mean(times))
        batched = simulate(row, law, done["decode"], slots, together=True)
        serial = simulate(row, law, done["decode"], slots, together=False)
        print(
            f"{name}: {len(row)} queries, measured {measured:.3f} s "
            f"[{measured - half:.3f}, {measured + half:.3f}]; llama-server's iterations "
            f"{batched:.3f} ({measured / batched:.3f}); thinkq's semantics {serial:.3f} "
            f"({measured / serial:.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="A running llama-server (…/v1).")
    parser.add_argument("--data-dir", type=Path, help="Local benchmark copies.")
    parser.add_argument("--slots", type=int, default=4, help="The server's --parallel.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--decode-tokens", type=int, default=48)
    parser.add_argument("--rate", type=float, nargs="*", default=[1.8], help="Replays (1/s).")
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--max-tokens", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="Results (JSON), resumable.")
    args = parser.parse_args()
    if args.slots < 1 or args.rounds < 1 or args.queries < 10 or min(args.rate, default=1) <= 0:
        parser.error("--slots, --rounds >= 1, --queries >= 10 and --rate > 0")
    done: Row = json.loads(args.out.read_text()) if args.out.exists() else {}
    parts = {"together": together, "decode": decode}
    parts |= {f"replay at {r:g}/s": replay for r in args.rate}
    for name, part in parts.items():
        if name not in done:
            print(f"{name} ...", flush=True)
            done[name] = asyncio.run(part(_at(args, name)))
            args.out.write_text(json.dumps(done, indent=1))
    report(done, args.slots)


def _at(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """``args`` with ``rate`` the replay's own (one rate a replay)."""
    if not name.startswith("replay"):
        return args
    return argparse.Namespace(**{**vars(args), "rate": float(name.split()[2].removesuffix("/s"))})


if __name__ == "__main__":
    try:
        main()
    except (httpx.HTTPError, OSError, KeyError) as exc:  # finished parts are saved
        raise SystemExit(f"error: {exc!r}") from None
