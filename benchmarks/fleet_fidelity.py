"""Fidelity of the fleet: do two replicas behind the gateway behave as the M/G/c model says?

Two llama.cpp servers serving SmolLM2-135M-Instruct (one slot each), the gateway in
force mode in front of both (one central FIFO queue, each request to the replica with
the fewest in flight), and Poisson load with real benchmark prompts at a utilisation
of about ``--utilization`` of the fleet (default 0.6: lambda E[S] / c). Compares the
measured mean system time with the fleet model (``docs/fleet.md``: the batched delay
law at c slots with perfect batching, M/G/c) at the budgets in force and with
``thinkq.simulate`` of the same fleet, with intervals: the simulator's batch-means
interval, and the 5-95 % spread of the mean over simulated runs of the same length.

The profile must be fitted on that server (``thinkq profile`` then ``thinkq fit``);
its task names must name benchmark sets (``gsm8k``, ``arc_challenge``, ...). Run::

    python benchmarks/fleet_fidelity.py --profile benchmarks/smollm2_fidelity.toml \\
        --data-dir DIR --refit

(``--base-url URL --base-url URL`` uses running servers instead of starting two;
``--pin`` puts every thread of replica i on core i, so that two replicas on one
two-core machine do not slow each other down: ``docs/fleet.md``, runs 7-9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

import thinkq
from thinkq.batching import delay
from thinkq.batching.fleet import replicated
from thinkq.measure.server import Server
from thinkq.measure.templates import get_template
from thinkq.serve import Estimate, Gateway, create_app
from thinkq.serve.loadtest import load_prompts, run_load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_fidelity import start_llama

#: Each replica decodes and reads prompts on one thread: two replicas on two cores.
#: llama.cpp's defaults (one decode thread, every core for prompts) oversubscribe the
#: cores with two replicas, and its spinning threads then slow every request severalfold.
THREADS = ("--n_threads", "1", "--n_threads_batch", "1")


def pin(pid: int, core: int) -> None:
    """Every thread of process ``pid`` on ``core`` (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {core})


def state_lines(gateway: Gateway) -> dict[str, object]:
    """The latency lines the gateway solves with now."""
    return dict(gateway.state()["latency"])


def fleet(profile: thinkq.Profile, replicas: int) -> thinkq.Profile:
    """The profile served by ``replicas`` one-slot replicas behind one queue (M/G/c)."""
    return profile.with_server(replicated(profile.server, replicas))


def rate_for(profile: thinkq.Profile, utilization: float, replicas: int) -> float:
    """The rate whose optimal fleet budgets load the fleet to ``utilization`` of its
    capacity (lambda E[S] = utilization * replicas; a damped fixed point)."""
    rate, served = profile.rate, fleet(profile, replicas)
    for _ in range(50):
        point = served.replace(rate=rate)
        mean_service = thinkq.model.moments(point, thinkq.solve(point).budgets).mean
        rate = 0.5 * rate + 0.5 * utilization * replicas / mean_service
    return rate


# long: one experiment, top to bottom: calibrate, load, then every comparison
async def experiment(args: argparse.Namespace, urls: list[str]) -> dict[str, object]:
    c = len(urls)
    profile = thinkq.load_profile(args.profile)
    profile = profile.replace(rate=rate_for(profile, args.utilization, c))
    prompts = load_prompts(list(profile.names), data_dir=args.data_dir, n=200, seed=0)
    servers = [Server(url, "smollm2", timeout=600) for url in urls]
    gateway = Gateway(
        profile, servers, template=get_template(args.template), window=args.window,
        resolve_every=5.0, max_queue=10_000, refit=args.refit,
    )  # fmt: skip
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        mix = dict(zip(profile.names, profile.share.tolist(), strict=True))
        load = {
            "mix": mix, "prompts": prompts, "max_tokens": args.answer_tokens, "stop": ("\n",),
            "transport": transport, "timeout": 3600,
        }  # fmt: skip
        rate = profile.rate
        # calibrate: the gateway learns the latency lines while the rate is aimed at the
        # utilisation measured in each round (the replicas share the machine's cores, so
        # service is slower when both are busy: the lines depend on the load they were
        # learnt at, and rates aimed from lines refitted on a narrow range of budgets
        # overshot: run 4 of docs/fleet.md)
        for round_ in range(args.rounds if args.refit else 0):
            begun = gateway.clock()
            calibration = await run_load(
                "http://gateway/v1", rate=rate, queries=args.calibration, seed=100 + round_,
                **load,
            )  # fmt: skip
            served = [r.service for r in gateway.records.recent() if r.arrival >= begun]
            busy = calibration.offered_rate * float(np.mean(served)) / c
            rate *= min(max(args.utilization / busy, 0.5), 2.0)
            gateway.resolve()
            print(f"round {round_}: utilisation {busy:.3f}, next rate {rate:.4g}/s, "
                  f"lines {state_lines(gateway)}", file=sys.stderr)  # fmt: skip
        started = gateway.clock()
        result = await run_load(
            "http://gateway/v1", rate=rate, queries=args.queries, seed=1, **load
        )
        state = gateway.state()
        print(f"after the load: {state['latency']}", file=sys.stderr)
        try:
            point = gateway.controller.at(Estimate(rate, profile.share, 0))
        except thinkq.UnstableLoadError:  # the lines refitted under load: past capacity
            sys.exit(f"error: at the latency lines refitted under load ({state['latency']}) "
                     f"the fleet is unstable at {rate:.4g}/s; the machine is too busy")  # fmt: skip
    records = [r for r in gateway.records.recent() if r.arrival >= started]
    service = np.array([r.service for r in records])
    budgets = np.array([state["budgets"][n] for n in profile.names])
    simulated = thinkq.simulate(point, budgets, queries=200_000, seed=0)
    runs = [
        thinkq.simulate(point, budgets, queries=args.queries, warmup=0, seed=seed)
        for seed in range(200)
    ]
    spread = np.percentile([run.mean_system_time for run in runs], [5, 95])
    # the fleet model again with the service times as measured and the rate as offered
    offered = result.offered_rate
    m1, m2 = float(service.mean()), float(np.mean(service**2))
    law = delay(point.server, offered, m1, m2) if point.server is not None else None
    waits = np.array([r.wait for r in records])
    beside = np.array([r.batch for r in records]) >= 1.5  # mostly served beside another
    return {
        "replicas": c,
        "rate": rate,
        "queries": result.overall.sent,
        "served": result.overall.served,
        "failed": result.overall.sent - result.overall.served,
        "served_per_replica_with_calibration": {r["url"]: r["served"] for r in state["replicas"]},
        "budgets": state["budgets"],
        "utilization_predicted": thinkq.model.utilization(point, budgets),
        "rate_offered": offered,
        "utilization_measured": offered * m1 / c,
        "mean_service_measured": m1,
        "mean_service_predicted": thinkq.model.moments(point, budgets).mean,
        "mean_service_alone_beside": [
            float(service[~beside].mean()) if np.any(~beside) else None,
            float(service[beside].mean()) if np.any(beside) else None,
        ],
        "mean_wait_measured": float(waits.mean()),
        "mean_wait_predicted": state["server"]["predicted_mean_waiting_time"],
        "measured_mean_system_time": result.overall.mean,
        "predicted_mean_system_time": thinkq.model.system_time(point, budgets),
        "simulated_mean_system_time": simulated.mean_system_time,
        "simulated_95_ci": list(simulated.mean_system_time_ci),
        "simulated_runs_5_95": spread.tolist(),
        "gateway_predicted_mean_system_time": state["predicted_mean_system_time"],
        "gateway_latency": state["latency"],
        "fleet_model_with_measured_service": None if law is None else law.system_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True, help="Profile fitted on SmolLM2.")
    parser.add_argument("--data-dir", type=Path, help="Local benchmark copies.")
    parser.add_argument(
        "--base-url",
        action="append",
        help="A running llama.cpp server (repeat; default: start them).",
    )
    parser.add_argument("--replicas", type=int, default=2, help="Servers to start.")
    parser.add_argument("--utilization", type=float, default=0.6, help="Of the fleet.")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--window", type=float, default=1800.0, help="Estimator window (s).")
    parser.add_argument("--answer-tokens", type=int, default=16, help="max_tokens per request.")
    parser.add_argument("--template", default="chatml")
    parser.add_argument("--refit", action="store_true", help="Refit latency lines online.")
    parser.add_argument("--calibration", type=int, default=60, help="Queries per round.")
    parser.add_argument("--rounds", type=int, default=2, help="Calibration rounds (--refit).")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pin", action="store_true",
        help="Pin replica i to core i (mod the cores): no two replicas share a core.",
    )  # fmt: skip
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    urls = list(args.base_url or [])
    try:
        while not urls or (not args.base_url and len(urls) < args.replicas):
            url, process = start_llama(*THREADS)
            if args.pin:
                pin(process.pid, len(processes) % (os.cpu_count() or 1))
            urls.append(url)
            processes.append(process)
        row = asyncio.run(experiment(args, urls))
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    if args.json:
        print(json.dumps(row))
        return
    for key, value in row.items():
        print(f"{key:>36}: {value}")
    measured = row["measured_mean_system_time"]
    if isinstance(measured, float):
        for other in ("predicted_mean_system_time", "simulated_mean_system_time",
                      "fleet_model_with_measured_service"):  # fmt: skip
            reference = row[other]
            assert isinstance(reference, float)
            print(f"{'measured / ' + other.removesuffix('_mean_system_time'):>36}: "
                  f"{measured / reference:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
