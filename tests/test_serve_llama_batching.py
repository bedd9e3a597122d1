"""The gateway in front of llama.cpp's own ``llama-server --parallel 4`` (continuous batching).

A profile with a ``[server]`` table is served with ``--concurrency 4`` in force mode:
requests sent at once are decoded together upstream, each thinks exactly its budget,
and ``/thinkq/state`` shows the batched model with a measured mean batch above one.
"""

from __future__ import annotations

import asyncio

import httpx

from llama_server import LlamaServer
from thinkq import Profile
from thinkq.batching import Server as BatchServer
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app, upstream_transport

TIMEOUT = 180.0  # generous: only to turn a hang into a failure
SLOTS = 4


def _profile() -> Profile:
    """Two types with budgets of about 10 to 20 tokens on a 4-slot server."""
    return Profile.from_arrays(
        names=["math", "chat"],
        share=[1.0, 1.0],
        A=[0.5, 0.3],
        b=[0.1, 0.2],
        D=[0.2, 0.2],
        t0=[0.2, 0.2],
        c=[0.012, 0.012],
        rate=1.0,
        alpha=1.0,
        max_tokens=24,
        default_task="chat",
        server=BatchServer(slots=SLOTS, tau0=0.009, tau1=0.003),
    )


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
