"""The gateway in front of llama.cpp's own ``llama-server --parallel 4`` (continuous batching).

A profile with a ``[server]`` table is served with ``--concurrency 4`` in force mode:
requests sent at once are decoded together upstream, each thinks exactly its budget,
and ``/thinkq/state`` shows the batched model with a measured mean batch above one.
The last test is the whole path a user takes: ``thinkq profile --slots 4`` and
``thinkq fit`` on the real server, then ``thinkq serve --concurrency 4`` with the
fitted profile.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from gateway_process import wait_healthy
from llama_profile import profile_and_fit
from llama_server import LlamaServer, free_port
from test_serve_llama import _profile as one_slot_profile
from thinkq import Profile, load_profile
from thinkq.batching import Server as BatchServer
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app, upstream_transport

TIMEOUT = 180.0  # generous: only to turn a hang into a failure
SLOTS = 4


def _profile() -> Profile:
    """The one-slot gateway tests' two types (budgets of about 10 tokens) on 4 slots."""
    return one_slot_profile().with_server(BatchServer(slots=SLOTS, tau0=0.009, tau1=0.003))


def test_a_batched_profile_is_served_four_at_a_time_with_exact_budgets(
    llama_batching_server: LlamaServer,
) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        state = (await client.get("/thinkq/state")).json()
        assert state["server"]["model"] == "batched"
        assert state["server"]["slots"] == SLOTS
        assert state["concurrency"] == SLOTS
        budgets = state["budgets"]
        assert all(0 < b <= 24 for b in budgets.values())

        async def ask(k: int) -> tuple[str, dict[str, object]]:
            task = ("math", "chat")[k % 2]
            body = {
                "messages": [{"role": "user", "content": f"Name a color, number {k}."}],
                "max_tokens": 8,
                "metadata": {"task": task},
                "seed": k,
            }
            reply = await client.post("/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            return task, reply.json()

        replies = await asyncio.gather(*(ask(k) for k in range(3 * SLOTS)))
        for task, data in replies:
            usage = data["usage"]
            assert isinstance(usage, dict)
            assert usage["completion_tokens_details"]["reasoning_tokens"] == budgets[task]
        gateway.publish()
        state = (await client.get("/thinkq/state")).json()
        # twelve requests at once on four slots: served several at a time
        assert state["server"]["measured_mean_batch"] > 1.0
        assert state["server"]["predicted_mean_batch"] > 0.0
        assert state["in_service"] == 0

    async def main() -> None:
        server = Server(
            llama_batching_server.base_url, llama_batching_server.model, timeout=TIMEOUT,
            transport=upstream_transport(),
        )  # fmt: skip
        gateway = Gateway(
            _profile(), server, template=TEMPLATES["chatml"], resolve_every=0,
            concurrency=SLOTS,
        )  # fmt: skip
        async with gateway:
            transport = httpx.ASGITransport(app=create_app(gateway))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", timeout=TIMEOUT
            ) as client:
                await asyncio.wait_for(scenario(client, gateway), TIMEOUT)

    asyncio.run(main())


def _hand_curves(measured: Profile) -> Profile:
    """The fitted latency lines and server table, with accuracy curves set by hand.

    SmolLM2-135M gains no accuracy from thinking (its fitted curves are flat and its
    optimal budgets zero), so, as in ``benchmarks/smollm2_fidelity.toml``, A and b are
    set, and alpha scaled with the measured seconds per token (a busy machine decodes
    slower), so that the budgets are tens of tokens and forcing is exercised.
    """
    n = measured.size
    assert measured.server is not None
    # a light load for whatever speed the machine had: 30% of the slots' capacity at
    # the largest budgets (a fit on a few queries may put t0 at 0)
    longest = measured.share @ (measured.t0 + measured.c * measured.max_tokens)
    rate = 0.3 * measured.server.max_capacity / float(longest)
    return Profile.from_arrays(
        names=measured.names, share=measured.share, A=[0.6] * n, b=[0.04] * n,
        D=[0.2] * n, t0=measured.t0, c=measured.c, variance=measured.variance, rate=rate,
        alpha=150.0 * float(measured.c.max()), max_tokens=measured.max_tokens,
        default_task=measured.names[0], server=measured.server,
    )  # fmt: skip


def _started(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    port = int(command[command.index("--port") + 1])
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(process, base, 120)
    return process, base


def test_profile_fit_and_serve_a_real_batching_server(
    llama_batching_server: LlamaServer, benchmarks_dir: Path, tmp_path: Path
) -> None:
    fitted = profile_and_fit(llama_batching_server, benchmarks_dir, tmp_path)
    measured = load_profile(fitted.profile)
    assert measured.server is not None
    assert measured.server.slots == SLOTS
    path = tmp_path / "served.json"
    path.write_text(json.dumps(_hand_curves(measured).to_dict()), encoding="utf-8")
    command = [
        sys.executable, "-m", "thinkq", "serve", "--upstream", llama_batching_server.base_url,
        "--profile", str(path), "--concurrency", str(SLOTS), "--port", str(free_port()),
        "--resolve-every", "3600",  # the budgets read below stay in force for the test
    ]  # fmt: skip
    process, base = _started(command)
    try:
        state = httpx.get(f"{base}/thinkq/state", timeout=10).json()
        assert state["server"]["model"] == "batched"
        assert state["server"]["slots"] == SLOTS
        assert state["server"]["tau1"] == measured.server.tau1
        assert state["concurrency"] == SLOTS
        budgets = state["budgets"]
        assert all(b > 0 for b in budgets.values()), budgets

        def ask(k: int) -> tuple[str, dict[str, Any]]:
            task = measured.names[k % measured.size]
            body = {"messages": [{"role": "user", "content": f"Count to {k}."}], "max_tokens": 8}
            reply = httpx.post(
                f"{base}/v1/chat/completions", json=body, headers={"X-Thinkq-Task": task},
                timeout=TIMEOUT,
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
            return task, reply.json()

        with ThreadPoolExecutor(2 * SLOTS) as pool:
            replies = list(pool.map(ask, range(2 * SLOTS)))
        for task, data in replies:
            assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == budgets[task]
        state = httpx.get(f"{base}/thinkq/state", timeout=10).json()
        assert state["server"]["measured_mean_batch"] > 1.0
        assert state["server"]["predicted_mean_batch"] > 0.0
    finally:
        os.kill(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert "ok task=" in err
