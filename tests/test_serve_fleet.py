"""The gateway in front of several replicas (``docs/fleet.md``), on the shared fake upstream.

Routing to the replica with the fewest requests in flight, one central queue with
every replica's slots, the plan solved for the fleet of the replicas up, a replica
that fails taken out of rotation (its request served on another) and probed back,
and one upstream behaving as it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import write_document
from fakes import MODEL, FakeServer, profile
from test_serve_app import metric
from thinkq.batching.server import Server as ServerTable
from thinkq.cli import app as cli
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, Queue, create_app
from thinkq.serve.replicas import Replicas

TIMEOUT = 30.0
CHAT = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8}


def url(k: int) -> str:
    return f"http://replica{k}.test:8000/v1"


def servers(fakes: list[FakeServer]) -> list[Server]:
    return [Server(url(k), MODEL, transport=f.transport()) for k, f in enumerate(fakes)]


@asynccontextmanager
async def fleet(
    fakes: list[FakeServer], **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    options = {"resolve_every": 0.0, "template": TEMPLATES["chatml"], "probe_every": 0.05}
    gateway = Gateway(profile(), servers(fakes), **options)
    async with gateway:
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=TIMEOUT
        ) as client:
            yield client, gateway


async def chat(client: httpx.AsyncClient, task: str = "math", **extra: Any) -> httpx.Response:
    body = CHAT | {"metadata": {"task": task}} | extra
    return await client.post("/v1/chat/completions", json=body)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def rows(gateway: Gateway) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in gateway.state()["replicas"]}


def test_requests_go_to_the_replicas_with_fewest_in_flight() -> None:
    fakes = [FakeServer(delay=0.2) for _ in range(3)]

    async def main() -> None:
        async with fleet(fakes) as (client, gateway):
            assert gateway.queue.concurrency == 3  # one central queue: every replica's slot
            replies = await asyncio.gather(*(chat(client) for _ in range(3)))
            assert [r.status_code for r in replies] == [200] * 3
            # three at once: one on each replica (the thinking and the answer call)
            assert [len(f.generated()) for f in fakes] == [2, 2, 2]
            assert [row["served"] for row in gateway.state()["replicas"]] == [1, 1, 1]
            replies = await asyncio.gather(*(chat(client) for _ in range(6)))
            assert all(r.status_code == 200 for r in replies)
            assert [len(f.generated()) for f in fakes] == [6, 6, 6]  # two more each

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_pick_is_the_fewest_in_flight_then_the_fewest_served() -> None:
    fakes = [FakeServer() for _ in range(3)]
    replicas = Replicas.over(
        servers(fakes), template=None, suppress_ids=None, budget_field="thinking_token_budget"
    )
    a, b, c = replicas.all
    a.in_flight, b.in_flight, c.in_flight = 2, 1, 1
    b.served, c.served = 5, 4
    assert replicas.pick() is c
    c.up = False
    assert replicas.pick() is b
    b.in_flight = 3
    assert replicas.pick() is a


def test_the_plan_is_solved_for_the_fleet_and_again_when_a_replica_leaves() -> None:
    fakes = [FakeServer(), FakeServer()]

    async def main() -> None:
        async with fleet(fakes) as (client, gateway):
            plan = gateway.controller.plan
            assert plan.server == ServerTable(slots=2, tau0=1.0, tau1=0.0)  # M/G/2
            assert gateway.state()["server"]["model"] == "M/G/2 (2 replicas)"
            single = Gateway(profile(), FakeServer().server(), resolve_every=0.0)
            one = single.controller.plan
            # half the load per server and a shorter wait: budgets at least as large
            assert all(f >= s for f, s in zip(plan.budgets, one.budgets, strict=True))
            assert plan.predicted_mean_waiting_time < one.predicted_mean_waiting_time
            assert plan.utilization == pytest.approx(plan.rate * plan.mean_service / 2)
            fakes[1].down = True
            replies = await asyncio.gather(chat(client), chat(client))  # one on each
            assert [r.status_code for r in replies] == [200, 200]  # replica 1's served again
            assert not rows(gateway)[url(1)]["up"]
            assert gateway.queue.concurrency == 1
            left = gateway.controller.plan
            assert left.server is None  # one replica left: M/G/1, solved at the estimate now
            assert left.utilization == pytest.approx(left.rate * left.mean_service)
            fakes[1].down = False
            await until(lambda: rows(gateway)[url(1)]["up"])  # probed back
            assert gateway.queue.concurrency == 2
            assert gateway.controller.plan.server == ServerTable(slots=2, tau0=1.0, tau1=0.0)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_replica_down_is_skipped_and_comes_back_after_a_probe(stream: bool) -> None:
    fakes = [FakeServer(delay=0.05), FakeServer(delay=0.05)]

    async def main() -> None:
        async with fleet(fakes, probe_every=0.2) as (client, gateway):
            fakes[0].down = True  # refuses connections: the first request finds it
            replies = await asyncio.gather(*(chat(client, stream=stream) for _ in range(4)))
            assert [r.status_code for r in replies] == [200] * 4  # none lost
            assert all("upstream_error" not in r.text for r in replies)
            state = rows(gateway)
            assert not state[url(0)]["up"]
            assert state[url(0)]["failed"] == 1
            assert state[url(1)]["served"] == 4
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_replica_up", replica=url(0)) == 0
            assert metric(text, "thinkq_replica_served", replica=url(1)) == 4
            assert metric(text, "thinkq_requests_total", task="math", outcome="ok") == 4
            fakes[0].down = False
            await until(lambda: rows(gateway)[url(0)]["up"])
            replies = await asyncio.gather(*(chat(client, stream=stream) for _ in range(2)))
            assert [r.status_code for r in replies] == [200, 200]
            assert rows(gateway)[url(0)]["served"] == 1  # back in rotation
            queue = gateway.queue
            assert (queue.acquired, queue.released, queue.busy) == (6, 6, 0)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_a_5xx_takes_the_replica_out_and_is_the_requests_reply() -> None:
    fakes = [FakeServer(), FakeServer()]

    async def main() -> None:
        async with fleet(fakes, probe_every=0.2) as (client, gateway):
            fakes[0].fail_on(1, 500)
            reply = await chat(client, task="chat")
            assert reply.status_code == 502
            assert "HTTP 500" in reply.text
            assert not rows(gateway)[url(0)]["up"]
            fakes[0].broken["/v1/models"] = 503  # its probes fail too: it stays out
            assert (await chat(client)).status_code == 200  # the other replica serves
            await until(lambda: len(fakes[0].bodies("/v1/models")) >= 2)
            assert not rows(gateway)[url(0)]["up"]
            del fakes[0].broken["/v1/models"]
            await until(lambda: rows(gateway)[url(0)]["up"])  # it answers its probe

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_a_stream_cut_after_its_first_piece_is_not_served_again() -> None:
    fakes = [FakeServer(cut_after=2), FakeServer()]

    async def main() -> None:
        async with fleet(fakes) as (client, gateway):
            reply = await chat(client, stream=True)
            assert reply.status_code == 200
            assert '"upstream_error"' in reply.text
            assert not rows(gateway)[url(0)]["up"]  # the broken connection took it out
            assert len(fakes[1].generated()) == 0

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_the_last_replica_up_stays_and_requests_fail_as_with_one_upstream() -> None:
    fakes = [FakeServer(), FakeServer()]

    async def main() -> None:
        async with fleet(fakes, probe_every=60.0) as (client, gateway):
            fakes[0].down = fakes[1].down = True
            reply = await chat(client)
            assert reply.status_code == 502
            assert "cannot connect" in reply.text
            assert [row["up"] for row in gateway.state()["replicas"]].count(True) == 1
            assert gateway.queue.concurrency == 1

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_one_upstream_is_the_gateway_as_it_was() -> None:
    fake = FakeServer()

    async def main() -> None:
        gateway = Gateway(
            profile(), fake.server(), template=TEMPLATES["chatml"], resolve_every=0.0,
            probe_every=0.01,
        )  # fmt: skip
        async with gateway:
            alone = Gateway(profile(), [FakeServer().server()], resolve_every=0.0)
            assert gateway.controller.plan == alone.controller.plan
            assert gateway.controller.plan.server is None
            fake.down = True
            app = httpx.ASGITransport(app=create_app(gateway))
            async with httpx.AsyncClient(transport=app, base_url="http://gw.test") as client:
                assert (await chat(client)).status_code == 502
                await asyncio.sleep(0.05)
                assert gateway.replicas._probing is None  # no probes, never out of rotation
                assert gateway.state()["replicas"] == [
                    {"url": fake.server().base_url, "up": True, "in_flight": 0,
                     "served": 0, "failed": 1}
                ]  # fmt: skip
                assert not [c for c in fake.calls if c.path == "/v1/models"]
                fake.down = False
                assert (await chat(client)).status_code == 200

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_the_queue_resizes_with_the_replicas_up() -> None:
    async def main() -> None:
        queue = Queue(concurrency=2, max_queue=10)
        await queue.acquire()
        await queue.acquire()
        waiting = [asyncio.ensure_future(queue.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        queue.resize(1)  # a replica left: its slot is not handed on
        queue.release()
        await asyncio.sleep(0)
        assert (queue.busy, queue.waiting) == (1, 3)
        queue.resize(3)  # two replicas up: two waiting requests start at once
        await asyncio.sleep(0)
        assert (queue.busy, queue.waiting) == (3, 1)
        assert [w.done() for w in waiting] == [True, True, False]
        queue.release()
        await asyncio.sleep(0)
        assert waiting[2].done()
        assert queue.busy == 3
        with pytest.raises(ValueError, match="concurrency"):
            queue.resize(0)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--upstream", "http://127.0.0.1:9/v1/"], "http://127.0.0.1:9/v1 is given twice"),
        (["--upstream", "localhost:8000"], "option --upstream:"),
    ],
)
def test_serve_upstream_errors_are_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], fragment: str
) -> None:
    path = write_document(tmp_path / "profile.toml", profile().to_dict())
    args = ["serve", "--profile", str(path), "--upstream", "http://127.0.0.1:9/v1", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: option --upstream: ")
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1


def test_replicas_of_a_batched_server_are_refused_in_one_line(tmp_path: Path) -> None:
    document = profile().to_dict() | {"server": {"slots": 4, "tau0": 0.01, "tau1": 0.002}}
    path = write_document(tmp_path / "profile.json", document)
    args = ["serve", "--profile", str(path)]
    args += ["--upstream", "http://127.0.0.1:9/v1", "--upstream", "http://127.0.0.1:10/v1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: option --upstream: 2 replicas of a batched server")
    assert result.stderr.count("\n") == 1
