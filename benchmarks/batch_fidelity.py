"""Fidelity on a batching server: does the batched model predict llama-server --parallel B?

llama.cpp's own ``llama-server`` serving SmolLM2-135M-Instruct with B slots (the
profile's ``[server]`` table, fitted by ``thinkq profile --slots B`` + ``thinkq fit``),
the gateway in force mode with ``--concurrency B`` in front of it, and Poisson load
with real benchmark prompts at rates whose predicted mean batch is ``--batches``
(default 1.5 and 3). For each load: the measured mean and p95 system time against the
batched model, the simulator of the same semantics, the paper's M/G/1 model of the
same traffic, and the gateway's own live prediction at the end of the run.

Throughput (``--throughput RHO``): every budget fixed at ``--throughput-budget``
tokens (l_max, with alpha so large that the solver keeps them there; a comma list
gives each type its own, each 0 or the largest: ``0,384``), the one-slot
deployment (``--concurrency 1``) at the rate that loads one slot to RHO by the
profile, then the B-slot deployment at ``--throughput-ratio`` (1.5) times that rate:
if its measured mean system time is no longer, B slots carry that many times the
one-slot deployment's rate at the same mean system time. Both runs of a pair serve
the same queries (one seed: the same types and prompts, the B-slot run's gaps
shorter by the ratio), so that the pair differs only in the deployment; the report
also gives the rate one slot carries at the B-slot run's mean system time by P-K
with the one-slot run's service moments.

Then the budgets that matter (``--compare``): at one rate that a single slot can
carry, J = alpha * accuracy - mean system time measured for three deployments: the
batched-optimal budgets at concurrency B, the M/G/1-optimal budgets at concurrency B
(what a user without a server table gets), and the M/G/1-optimal budgets at
concurrency 1 (the paper's deployment). Accuracy is the profile's curves at the
budgets served: SmolLM2-135M gains no accuracy from thinking, so the curves are set
by hand as in ``benchmarks/smollm2_fidelity.toml``.

With ``--prompt P`` the profile's server gets a prompt stage of P seconds
(``docs/batching.md``, "A prompt stage": llama.cpp computing a prompt alone while the
batch waits); ``--prompt measure`` measures it first (:func:`measure_prompt`: new
prompts, one at a time, llama-server's own ``prompt_ms``) and lifts each type's line by
its new prompt's time (the profile's lines were measured with prompts held by the
slots). ``--unique-prompts`` tags every query's prompt so that no slot or prompt cache
holds it (``thinkq loadtest --unique-prompts``): without it the 300 prompts a type
recur, and llama-server computes fewer of them the longer a run goes.

Every run is written to ``--out`` (JSON) as soon as it ends; a rerun skips the runs
already there. Run::

    python benchmarks/batch_fidelity.py --profile smollm2-batched.toml \\
        --data-dir DIR --out docs/profiling/batch_fidelity.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import thinkq
from thinkq.batching import delay
from thinkq.measure.server import Server
from thinkq.measure.templates import get_template
from thinkq.serve import Estimate, Gateway, create_app
from thinkq.serve.loadtest import load_prompts, run_load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from llama_server import start_batching, stop

Row = dict[str, Any]


def mean_batch(profile: thinkq.Profile) -> float:
    """The batched model's mean number in service at the optimal budgets."""
    budgets = thinkq.solve(profile).budgets
    m = thinkq.model.moments(profile, budgets)
    assert profile.server is not None
    return delay(profile.server, profile.rate, m.mean, m.second).batch


def rate_for_batch(profile: thinkq.Profile, target: float) -> float:
    """The rate whose optimal budgets give a predicted mean batch of ``target`` (bisection)."""
    assert profile.server is not None
    high = 0.999 * profile.server.rate_limit(float(np.dot(profile.share, profile.t0)))
    low = 1e-6
    for _ in range(60):
        middle = math.sqrt(low * high)
        if mean_batch(profile.replace(rate=middle)) < target:
            low = middle
        else:
            high = middle
    return low


def rate_for_utilization(profile: thinkq.Profile, utilization: float) -> float:
    """The rate whose optimal budgets load a single slot to ``utilization`` (M/G/1)."""
    single = profile.with_server(None)
    rate = single.rate
    for _ in range(60):
        point = single.replace(rate=rate)
        service = thinkq.model.moments(point, thinkq.solve(point).budgets).mean
        rate = 0.5 * rate + 0.5 * utilization / service
    return rate


def interval(times: np.ndarray, batches: int = 10) -> list[float]:
    """A 95% batch-means interval of the mean of ``times`` (in arrival order)."""
    means = np.array([part.mean() for part in np.array_split(times, batches)])
    half = 2.262 * means.std(ddof=1) / math.sqrt(batches)  # t(0.975, 9)
    return [float(times.mean() - half), float(times.mean() + half)]


async def serve_run(
    args: argparse.Namespace, base_url: str, profile: thinkq.Profile, concurrency: int, seed: int
) -> Row:
    """Serve ``args.queries`` Poisson queries at ``profile.rate`` through the gateway."""
    prompts = load_prompts(list(profile.names), data_dir=args.data_dir, n=300, seed=0)
    upstream = Server(base_url, "smollm2", timeout=3600)
    gateway = Gateway(
        profile, upstream, template=get_template(args.template), window=1e6,
        resolve_every=5.0, max_queue=100_000, concurrency=concurrency, refit=args.refit,
    )  # fmt: skip
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        mix = dict(zip(profile.names, profile.share.tolist(), strict=True))
        result = await run_load(
            "http://gateway/v1", rate=profile.rate, queries=args.queries, mix=mix,
            prompts=prompts, max_tokens=args.answer_tokens, stop=("\n",), seed=seed,
            unique=args.unique_prompts, transport=transport, timeout=7200,
        )  # fmt: skip
        state = gateway.state()
        # the live prediction's inputs, one at a time: the rate it estimated, its lines
        try:
            offered: thinkq.Profile | None = gateway.controller.at(
                Estimate(result.offered_rate, profile.share, 0)
            )
        except thinkq.UnstableLoadError:  # its refitted server cannot carry the load
            offered = None
        live_server = None if gateway.refit is None else gateway.refit.server()
    served = list(gateway.records.recent())
    times = np.array([r.system_time for r in sorted(served, key=lambda r: r.arrival)])
    budgets = [state["budgets"][name] for name in profile.names]
    counts = np.array([sum(1 for r in served if r.task == n) for n in profile.names])
    accuracy = float(np.dot(counts / counts.sum(), thinkq.model.accuracy(profile, budgets)))
    server = state["server"] or {}
    law = profile.batched  # the server's law as profiled, not the refit's
    solo = np.array([r.service * (law.speed(r.batch) if law else 1.0) for r in served])
    m1, m2 = float(solo.mean()), float(np.mean(solo**2))
    if law is None:
        rho = result.offered_rate * m1
        measured_moments = result.offered_rate * m2 / (2 * (1 - rho)) + m1 if rho < 1 else math.inf
    else:
        measured_moments = delay(law, result.offered_rate, m1, m2).system_time
    return {
        "concurrency": concurrency,
        "rate": profile.rate,
        "offered_rate": result.offered_rate,
        "sent": result.overall.sent,
        "served": result.overall.served,
        "rejected": result.overall.rejected,
        "budgets": state["budgets"],
        "budget_counts": {  # the budgets served (the live gateway re-solves during a run)
            name: {
                str(int(b)): int(n)
                for b, n in zip(
                    *np.unique([r.budget for r in served if r.task == name], return_counts=True),
                    strict=True,
                )
            }
            for name in profile.names
        },
        "measured_mean": float(times.mean()),
        "measured_mean_95": interval(times),
        "measured_p95": float(np.percentile(times, 95)),
        "client_mean": result.overall.mean,
        "measured_mean_service": float(np.mean([r.service for r in served])),
        "measured_mean_batch": server.get("measured_mean_batch"),
        "live_prediction": state["predicted_mean_system_time"],
        "live_rate_estimate": state["rate_estimate"],
        "live_at_offered_rate": None
        if offered is None
        else thinkq.model.system_time(offered, budgets),
        "live_refit_server": None if live_server is None else live_server.to_dict(),
        "model_with_measured_moments": measured_moments,
        "solo_moments": [m1, m2],
        "live_latency": state["latency"],
        "live_server": server,
        "accuracy": accuracy,
        "alpha": profile.alpha,
        "measured_J": profile.alpha * accuracy - float(times.mean()),
    }


async def learn(
    args: argparse.Namespace, base_url: str, point: thinkq.Profile, queries: int, seed: int
) -> tuple[thinkq.Profile, dict[str, int]]:
    """Serve ``queries`` queries at ``point`` with the refit on; the profile the gateway
    learned (latency lines, the server's law) and the budgets it served."""
    assert point.server is not None
    prompts = load_prompts(list(point.names), data_dir=args.data_dir, n=300, seed=0)
    gateway = Gateway(
        point, Server(base_url, "smollm2", timeout=3600), template=get_template(args.template),
        window=1e6, resolve_every=5.0, max_queue=100_000, concurrency=point.server.slots,
        refit=True,
    )  # fmt: skip
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        mix = dict(zip(point.names, point.share.tolist(), strict=True))
        await run_load(
            "http://gateway/v1", rate=point.rate, queries=queries, mix=mix,
            prompts=prompts, max_tokens=args.answer_tokens, stop=("\n",), seed=seed,
            unique=args.unique_prompts, transport=transport, timeout=7200,
        )  # fmt: skip
        learned = gateway.controller.at(Estimate(point.rate, point.share, 0))
        budgets = dict(gateway.state()["budgets"])
    return learned, budgets


async def measure_prompt(
    args: argparse.Namespace, base_url: str, profile: thinkq.Profile, count: int = 24
) -> Row:
    """The stall of a prompt: llama-server's ``timings.prompt_ms`` of ``count`` prompts a
    type, each tagged so that no slot holds it (as ``--unique-prompts`` serves them), sent
    one at a time to an idle server (so no decode shares their steps), mixed by the
    profile's shares. A prompt that takes a slot is computed while every decoding query
    waits (``docs/batching.md``, "A prompt stage")."""
    template = get_template(args.template)
    assert template is not None
    prompts = load_prompts(list(profile.names), data_dir=args.data_dir, n=300, seed=0)
    seconds: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        for name in profile.names:
            for k, text in enumerate(prompts[name][-count:]):  # the end: the load draws all
                body = {
                    "model": "smollm2",
                    "prompt": template.render([{"role": "user", "content": f"[probe {k}] {text}"}]),
                    "max_tokens": 1,
                    "temperature": 0,
                }
                reply = (await client.post("/completions", json=body)).json()
                seconds.setdefault(name, []).append(reply["timings"]["prompt_ms"] / 1000)
    means = [float(np.mean(seconds[name])) for name in profile.names]
    return {
        "prompt": float(np.dot(profile.share, means)),
        "by_type": dict(zip(profile.names, means, strict=True)),
        "count": count,
    }


async def calibrate(args: argparse.Namespace, base_url: str, profile: thinkq.Profile) -> Row:
    """Teach the gateway this machine (the gateway beside the server), as the one-slot
    experiment does: serve ``args.calibration`` queries at a mean batch of about 1 with
    the refit on at the optimal budgets there, then as many at zero budgets, and return
    the profile whose line of each type runs through the solo times learned at the two
    budgets (and the parts). One budget alone pins a type's line only there: with the
    profile's slope, a line learned at 40 tokens put ARC-Challenge's solo time at zero
    tokens 45 % above what the gateway then measured at zero tokens (the loads near
    capacity are served at zero budgets)."""
    planned = profile.replace(rate=rate_for_batch(profile, 1.0))
    at_plan, budgets = await learn(args, base_url, planned, args.calibration, seed=99)
    zero, _ = fixed_budgets(profile, "0")
    at_zero, _ = await learn(
        args, base_url, zero.replace(rate=rate_for_batch(zero, 1.0)), args.calibration, seed=98
    )
    served = np.array([budgets[name] for name in profile.names], dtype=float)
    high = at_plan.t0 + at_plan.c * served  # the solo time learned at the budget served
    slope = np.where(served > 0, (high - at_zero.t0) / np.maximum(served, 1.0), at_plan.c)
    c = np.where(slope > 0, slope, at_plan.c)  # a slope the noise made <= 0: the profile's
    learned = thinkq.Profile.from_arrays(
        server=at_plan.server, names=profile.names, share=profile.share, A=profile.A,
        b=profile.b, D=profile.D, t0=np.maximum(high - c * served, 0.0), c=c,
        variance=(at_plan.variance + at_zero.variance) / 2, rate=profile.rate,
        alpha=profile.alpha, max_tokens=profile.max_tokens,
    )  # fmt: skip
    return {
        "profile": learned.to_dict(),
        "at_budgets": {"budgets": budgets, "t0": at_plan.t0.tolist(), "c": at_plan.c.tolist()},
        "at_zero": {"t0": at_zero.t0.tolist()},
    }


def served_moments(profile: thinkq.Profile, row: Row) -> tuple[float, float]:
    """E[S] and E[S^2] of the solo times at the budgets each query was served, by the
    profile's lines (the live gateway re-solves during a run: near capacity its budgets
    move), with the types in the proportions served."""
    weights, means, variances = [], [], []
    counts = row.get("budget_counts") or {
        name: {str(row["budgets"][name]): 1} for name in profile.names
    }  # rows of before: the final budgets
    for k, name in enumerate(profile.names):
        for budget, n in counts[name].items():
            weights.append(n)
            means.append(profile.t0[k] + profile.c[k] * int(budget))
            variances.append(profile.variance[k])
    w = np.array(weights, dtype=float) / sum(weights)
    mean = np.array(means)
    return float(w @ mean), float(w @ (mean**2 + np.array(variances)))


def elasticity(server: Any, rate: float, m1: float, m2: float, step: float = 0.01) -> float:
    """d ln E[T] / d ln S of the batched model: every solo time (and the prompt in it)
    scaled by 1 +- ``step``, the rate held. Near capacity it is large: an error of x % in
    the solo times learned is about this many times x % in the prediction, which bounds
    how closely any calibration can be checked at that load."""
    times = []
    for f in (1.0 - step, 1.0 + step):
        scaled = replace(server, prompt=server.prompt * f)
        times.append(delay(scaled, rate, m1 * f, m2 * f * f).system_time)
    return float(math.log(times[1] / times[0]) / math.log((1.0 + step) / (1.0 - step)))


def predictions(profile: thinkq.Profile, row: Row, queries: int) -> Row:
    """The batched model, the simulator and M/G/1 at the offered rate and budgets served
    (infinite where the model calls that load unstable: a run's Poisson arrivals can
    come out above a rate planned near capacity). The model takes the budgets each
    query was served (:func:`served_moments`); the simulator and M/G/1 the final ones."""
    budgets = np.array([row["budgets"][name] for name in profile.names], dtype=float)
    m1, m2 = served_moments(profile, row)
    unstable = {"model_mean": math.inf, "mgl_mean": math.inf, "model_mean_service": m1}
    try:
        point = profile.replace(rate=row["offered_rate"])
    except thinkq.UnstableLoadError:
        return unstable
    if point.batched is None:
        rho = point.rate * m1
        model_mean = point.rate * m2 / (2 * (1 - rho)) + m1 if rho < 1 else math.inf
    else:
        model_mean = delay(point.batched, point.rate, m1, m2).system_time
    if not math.isfinite(model_mean):
        return unstable
    if not math.isfinite(thinkq.model.system_time(point, budgets)):
        return {"model_mean": model_mean, "mgl_mean": math.inf, "model_mean_service": m1}
    simulated = thinkq.simulate(point, budgets, queries=200_000, seed=0)
    runs = [
        thinkq.simulate(point, budgets, queries=queries, warmup=0, seed=s).mean_system_time
        for s in range(100)
    ]
    try:  # the paper's M/G/1 model of the same traffic: unstable beyond one slot's capacity
        mgl = thinkq.model.system_time(point.with_server(None), budgets)
    except thinkq.UnstableLoadError:
        mgl = math.inf
    law = delay(point.server, point.rate, m1, m2) if point.batched else None
    sensitive = elasticity(point.batched, point.rate, m1, m2) if point.batched else 1.0
    return {
        "model_elasticity": sensitive,
        "model_mean": model_mean,
        "model_mean_batch": None if law is None else law.batch,
        "mgl_mean": mgl,
        "simulated_mean": simulated.mean_system_time,
        "simulated_p95": simulated.p95_system_time,
        "simulated_runs_5_95": np.percentile(runs, [5, 95]).tolist(),
        "model_mean_service": m1,
        "model_mean_final_budgets": thinkq.model.system_time(point, budgets),
    }


def runs(profile: thinkq.Profile, args: argparse.Namespace) -> dict[str, tuple[Any, int]]:
    """The runs of the experiment by name: (profile served, concurrency)."""
    assert profile.server is not None
    slots = profile.server.slots
    plan: dict[str, tuple[Any, int]] = {}
    for target in args.batches:
        plan[f"batched, mean batch {target:g}"] = (
            profile.replace(rate=rate_for_batch(profile, target)),
            slots,
        )
    if args.throughput is not None:
        fixed, budgets = fixed_budgets(profile, args.throughput_budget)
        service = thinkq.model.moments(fixed, budgets).mean
        one = args.throughput / service
        where = f"{args.throughput:g}, budgets {','.join(map(str, budgets))}"
        plan[f"throughput: one slot, utilization {where}"] = (
            fixed.replace(rate=one).with_server(None),
            1,
        )
        plan[f"throughput: B slots, {args.throughput_ratio:g}x utilization {where}"] = (
            fixed.replace(rate=args.throughput_ratio * one),
            slots,
        )
    if args.compare:
        rate = rate_for_utilization(profile, args.compare_utilization)
        at = profile.replace(rate=rate)
        plan["compare: batched budgets, B slots"] = (at, slots)
        plan["compare: M/G/1 budgets, B slots"] = (at.with_server(None), slots)
        plan["compare: M/G/1 budgets, 1 slot"] = (at.with_server(None), 1)
    return plan


def fixed_budgets(profile: thinkq.Profile, given: str) -> tuple[thinkq.Profile, list[int]]:
    """The profile whose optimal budgets are ``given`` (one for all, or one per type, each
    0 or the largest) at any stable load: l_max the largest, the accuracy curve of a type
    at 0 flat, that of a type at l_max so steep and alpha so large that the solver keeps
    it there. Only the latency lines matter in the throughput runs."""
    try:
        values = [int(v) for v in given.split(",")]
    except ValueError:
        sys.exit(f"error: --throughput-budget: whole numbers of tokens, got {given}")
    budgets = values * profile.size if len(values) == 1 else values
    if len(budgets) != profile.size or min(budgets) < 0:
        sys.exit(f"error: --throughput-budget: one budget or {profile.size} (>= 0), got {given}")
    top = max(budgets)
    if any(0 < b < top for b in budgets):
        sys.exit(f"error: --throughput-budget: each budget 0 or the largest, got {given}")
    data = profile.to_dict()
    for task, budget in zip(data["tasks"], budgets, strict=True):
        if budget == 0:
            task["A"] = 1e-9  # (must be > 0): a gain far below any token's cost
        else:
            task["b"] = min(task["b"], 1.0 / top)
    data["alpha"], data["max_tokens"] = 1e6, max(top, 1)
    return thinkq.profile.profile_from_dict(data), budgets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True, help="Fitted, with [server].")
    parser.add_argument("--data-dir", type=Path, help="Local benchmark copies.")
    parser.add_argument("--base-url", help="A running llama-server (default: start one).")
    parser.add_argument("--batches", type=float, nargs="*", default=[1.5, 3.0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--answer-tokens", type=int, default=16, help="max_tokens per request.")
    parser.add_argument("--template", default="chatml")
    parser.add_argument("--refit", action="store_true", help="Refit online (live prediction).")
    parser.add_argument("--compare", action="store_true", help="The three deployments too.")
    parser.add_argument("--compare-utilization", type=float, default=0.6)
    parser.add_argument("--throughput", type=float, help="One slot's utilization (see above).")
    parser.add_argument("--throughput-budget", default="16", help="Tokens: one, or one a type.")
    parser.add_argument("--throughput-ratio", type=float, default=1.5)
    parser.add_argument(
        "--calibration",
        type=int,
        default=0,
        help="Queries that teach the gateway this machine first (refit), at each of two budgets.",
    )
    parser.add_argument(
        "--prompt",
        help="Seconds, or 'measure': a prompt stage for the profile's server (docs/batching.md).",
    )
    parser.add_argument(
        "--unique-prompts",
        action="store_true",
        help="Tag each query's prompt so that no slot holds it (thinkq loadtest's option).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Runs' arrivals: seed + 1, + 2, ...")
    parser.add_argument("--out", type=Path, required=True, help="Results (JSON), resumable.")
    args = parser.parse_args()
    if args.queries < 1:
        parser.error(f"--queries: at least 1, got {args.queries}")
    if args.calibration < 0:
        parser.error(f"--calibration: queries at each budget, >= 0, got {args.calibration}")
    if args.throughput is not None and not 0 < args.throughput < 1:
        parser.error(f"--throughput: one slot's utilization in (0, 1), got {args.throughput}")
    profiled = thinkq.load_profile(args.profile)
    if profiled.batched is None:
        sys.exit(f"error: {args.profile}: the profile has no [server] table with slots > 1")
    if args.prompt not in (None, "measure"):
        try:
            seconds = float(args.prompt)
        except ValueError:
            parser.error(f"--prompt: seconds or 'measure', got {args.prompt!r}")
        try:
            profiled = profiled.with_server(replace(profiled.batched, prompt=seconds))
        except thinkq.ThinkqError as exc:
            parser.error(f"--prompt: {exc}")
    done: dict[str, Row] = json.loads(args.out.read_text()) if args.out.exists() else {}
    llama = None if args.base_url else start_batching(parallel=profiled.server.slots)
    base_url = args.base_url or (llama.base_url if llama else "")
    try:
        if args.prompt == "measure":
            if "prompt" not in done:
                done["prompt"] = asyncio.run(measure_prompt(args, base_url, profiled))
                save(args.out, done)
            print(f"prompt stage: {done['prompt']['prompt']:.4f} s", flush=True)
            # the profile's lines were measured with the prompts mostly held by the slots:
            # each type's uncached prompt on top, as a start for the calibration
            lifted = [done["prompt"]["by_type"][name] for name in profiled.names]
            try:
                stage = replace(profiled.batched, prompt=done["prompt"]["prompt"])
                profiled = thinkq.Profile.from_arrays(
                    server=stage, names=profiled.names, share=profiled.share, A=profiled.A,
                    b=profiled.b, D=profiled.D, t0=profiled.t0 + np.array(lifted),
                    c=profiled.c, variance=profiled.variance, rate=profiled.rate,
                    alpha=profiled.alpha, max_tokens=profiled.max_tokens,
                )  # fmt: skip
            except thinkq.ThinkqError as exc:
                sys.exit(f"error: the measured prompt stage: {exc}")
        profile = profiled
        if args.calibration and "calibration" not in done:
            done["calibration"] = asyncio.run(calibrate(args, base_url, profiled))
            save(args.out, done)
        if "calibration" in done:
            profile = thinkq.profile.profile_from_dict(done["calibration"]["profile"])
        todo = {k: v for k, v in runs(profile, args).items() if "model_mean" not in done.get(k, {})}
        for index, (name, (served, concurrency)) in enumerate(todo.items(), start=1):
            # a throughput pair serves the same queries (common random numbers): the same
            # types and prompts, the B-slot run's gaps 1 / ratio times the one-slot run's
            seed = args.seed + (1 if name.startswith("throughput:") else index)
            if name not in done:  # served, kept, then predicted: a crash loses no queries
                print(f"{name}: rate {served.rate:.4g}/s, concurrency {concurrency}", flush=True)
                done[name] = asyncio.run(serve_run(args, base_url, served, concurrency, seed))
                save(args.out, done)
            row = done[name]
            physical = profile if concurrency > 1 else profile.with_server(None)
            row |= predictions(physical, row, args.queries)
            try:
                row["profiled_model_mean"] = thinkq.model.system_time(
                    profiled.replace(rate=row["offered_rate"]),
                    [row["budgets"][name] for name in profiled.names],
                )
            except thinkq.UnstableLoadError:
                row["profiled_model_mean"] = math.inf
            done[name] = row
            save(args.out, done)
    finally:
        if llama is not None:
            stop(llama)
    report({k: v for k, v in done.items() if k not in ("calibration", "prompt")}, profile)


def save(out: Path, done: dict[str, Row]) -> None:
    """Write ``done`` to ``out`` whole (through a file beside it), never half-written."""
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(done, indent=1))
    partial.replace(out)


def one_slot_moments(profile: thinkq.Profile, budgets: list[int], one: Row) -> tuple[float, ...]:
    """The one-slot run's service moments: measured (``solo_moments``), or for runs that
    did not record them, its measured mean with the profile's cs^2 at ``budgets``."""
    if "solo_moments" in one:
        return tuple(one["solo_moments"])
    m = thinkq.model.moments(profile, budgets)
    mean = one["measured_mean_service"]
    return mean, mean * mean * m.second / m.mean**2


def one_slot_rate(moments: tuple[float, ...], system_time: float) -> float:
    """The rate at which one slot's mean system time is ``system_time`` by P-K (exact for
    FIFO M/G/1) with service moments ``moments``: T = m1 + rate m2 / (2 (1 - rate m1))
    solved for the rate."""
    m1, m2 = moments
    excess = system_time - m1
    return 2.0 * excess / (m2 + 2.0 * m1 * excess) if excess > 0 else 0.0


def throughput(done: dict[str, Row], profile: thinkq.Profile) -> None:
    """Each B-slot throughput run's mean system time over its one-slot run's, and the
    rate it carried over the rate one slot carries at the same mean system time by P-K
    with the one-slot run's service (a run of a few hundred queries near capacity pins
    its own mean only loosely)."""
    for name, many in done.items():
        if not name.startswith("throughput: B slots"):
            continue
        at = name.rpartition("utilization ")[2]
        one = done.get(f"throughput: one slot, utilization {at}")
        if one is None:
            continue
        ratio = many["offered_rate"] / one["offered_rate"]
        print(
            f"\nthroughput at one slot's utilization {at}: {many['concurrency']} slots at "
            f"{ratio:.2f}x the offered rate: mean system time {many['measured_mean']:.3f} s "
            f"against one slot's {one['measured_mean']:.3f} s "
            f"({many['measured_mean'] / one['measured_mean']:.2f}x)"
        )
        moments = one_slot_moments(profile, [one["budgets"][n] for n in profile.names], one)
        same = one_slot_rate(moments, many["measured_mean"])
        print(
            f"  P-K with the one-slot run's service: one slot carries {same:.4g}/s at "
            f"{many['measured_mean']:.3f} s (its capacity {1 / moments[0]:.4g}/s): "
            f"{many['concurrency']} slots carried "
            f"{many['offered_rate'] / same if same > 0 else math.inf:.2f}x that"
        )


def report(done: dict[str, Row], profile: thinkq.Profile) -> None:
    keys = ("offered_rate", "measured_mean", "measured_mean_95", "measured_p95", "model_mean",
            "profiled_model_mean",
            "simulated_mean", "simulated_p95", "mgl_mean", "live_prediction",
            "live_rate_estimate", "live_at_offered_rate", "model_with_measured_moments",
            "measured_mean_batch", "model_mean_batch", "model_elasticity",
            "measured_J")  # fmt: skip
    for name, row in done.items():
        print(f"\n{name} (concurrency {row['concurrency']}, budgets {row['budgets']})")
        for key in keys:
            print(f"  {key:>22}: {row.get(key)}")
        measured = row["measured_mean"]
        for key in ("model_mean", "simulated_mean", "mgl_mean", "live_prediction"):
            value = row.get(key)
            if isinstance(value, float) and math.isfinite(value) and value > 0:
                print(f"  {'measured / ' + key:>22}: {measured / value:.3f}")
    throughput(done, profile)


if __name__ == "__main__":
    try:
        main()
    except (thinkq.ThinkqError, httpx.HTTPError, OSError) as exc:  # finished runs are saved
        sys.exit(f"error: {exc}")
