"""The gateway on a batched server: the profile's ``[server]`` table drives the plan.

Against the fake upstream (``fakes.FakeServer``): the budgets, the predictions and the
overload test come from the batched model; ``/thinkq/state`` and ``/metrics`` show
the server; the queue measures the batch each request was served in; the online refit
recovers a step-time law from observed times; ``--concurrency`` must match the slots.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import thinkq
from conftest import write_document
from fakes import Clock, FakeServer, profile
from test_serve_app import gateway_client, metric
from thinkq import model
from thinkq.batching import Server
from thinkq.cli import app
from thinkq.profile import Profile
from thinkq.serve import Gateway
from thinkq.serve.controller import Controller
from thinkq.serve.estimator import Estimator
from thinkq.serve.queue import Queue
from thinkq.serve.refit import LatencyRefit
from thinkq.serve.status import state

SERVER = Server(slots=4, tau0=0.01, tau1=0.005)


def batched(**changes: object) -> Profile:
    # heavier than the fake's default, so that the queue matters at the prior rate
    return profile(rate=4.0, server=SERVER, **changes)


def test_the_plan_is_the_batched_optimum_and_its_figures() -> None:
    p = batched()
    estimator = Estimator(prior_rate=p.rate, prior_shares=p.share, window=60.0, clock=Clock())
    plan = Controller(p, estimator).plan
    expected = thinkq.solve(p).budgets
    assert plan.budgets == tuple(int(b) for b in expected)
    assert plan.server == SERVER
    assert plan.predicted_mean_system_time == pytest.approx(model.system_time(p, expected))
    assert plan.utilization == pytest.approx(model.utilization(p, expected))
    law = thinkq.batching.delay(SERVER, p.rate, *model.moments(p, expected)[:2])
    assert plan.mean_batch == pytest.approx(law.batch)
    assert plan.step_time == pytest.approx(law.step)
    assert plan.predicted_mean_waiting_time == pytest.approx(law.waiting_time)
    # the M/G/1 model of the same traffic is another answer: the table matters
    single = Controller(p.with_server(None), estimator).plan
    assert single.predicted_mean_system_time != pytest.approx(plan.predicted_mean_system_time)


def test_a_load_beyond_one_slot_but_within_the_batch_is_not_overload() -> None:
    # rate * E[S(0)] = 12 * 0.1 = 1.2: unstable on one slot, C(4) = 2.4 carries it
    p = profile(rate=12.0, server=SERVER)
    estimator = Estimator(prior_rate=p.rate, prior_shares=p.share, window=60.0, clock=Clock())
    plan = Controller(p, estimator).plan
    assert not plan.overloaded
    assert plan.utilization < 1.0
    assert plan.capacity == pytest.approx(SERVER.max_capacity)
    with pytest.raises(thinkq.UnstableLoadError):
        profile(rate=12.0)


def test_state_and_metrics_show_the_server_model() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway, _: FakeServer) -> None:
        reply = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 8},
            headers={"X-Thinkq-Task": "math"},
        )
        assert reply.status_code == 200
        gateway.publish()
        body = (await client.get("/thinkq/state")).json()
        server = body["server"]
        assert server["model"] == "batched"
        assert (server["slots"], server["tau0"], server["tau1"]) == (4, 0.01, 0.005)
        assert server["capacity"] == pytest.approx(SERVER.max_capacity)
        assert server["predicted_mean_batch"] == pytest.approx(gateway.controller.plan.mean_batch)
        assert server["measured_mean_batch"] is not None
        assert server["measured_mean_batch"] > 0
        assert body["concurrency"] == 4
        text = (await client.get("/metrics")).text
        assert metric(text, "thinkq_predicted_mean_batch") == pytest.approx(
            gateway.controller.plan.mean_batch
        )

    async def main() -> None:
        async with gateway_client(FakeServer(), profile=batched(), concurrency=4) as (c, g):
            await asyncio.wait_for(scenario(c, g, FakeServer()), 60)

    asyncio.run(main())


def test_state_has_no_server_without_a_table() -> None:
    async def main() -> None:
        async with gateway_client(FakeServer()) as (_, gateway):
            assert state(gateway)["server"] is None

    asyncio.run(main())


def test_the_queue_measures_the_batch_each_request_was_served_in() -> None:
    clock = Clock()
    queue = Queue(concurrency=4, max_queue=4, clock=clock)

    async def main() -> None:
        await queue.acquire()  # request A alone for 1 s
        start_a = queue.area()
        clock.now += 1.0
        await queue.acquire()  # then B beside it for 2 s
        start_b = queue.area()
        clock.now += 2.0
        queue.release()  # A leaves after 3 s: 1 s alone, 2 s in a batch of two
        assert (queue.area() - start_a) / 3.0 == pytest.approx(5.0 / 3.0)
        clock.now += 1.0
        assert (queue.area() - start_b) / 3.0 == pytest.approx(5.0 / 3.0)
        queue.release()
        clock.now += 5.0
        assert queue.area() == pytest.approx(1.0 + 2 * 2.0 + 1.0)

    asyncio.run(main())


def test_the_refit_recovers_the_step_time_law_and_the_solo_lines() -> None:
    p = batched()
    clock = Clock(100.0)
    refit = LatencyRefit(p, window=60.0, clock=clock, min_samples=5)
    truth = Server(slots=4, tau0=0.006, tau1=0.009)  # another law than the profile's
    rng = np.random.default_rng(3)
    for _ in range(200):
        task, tokens, batch = int(rng.integers(2)), int(rng.integers(20, 200)), rng.uniform(1, 4)
        solo = p.t0[task] + p.c[task] * tokens
        refit.observe(task, tokens, solo / truth.speed(batch), batch)
    fitted = refit.server()
    assert fitted is not None
    assert fitted.tau1 / fitted.step_time(1) == pytest.approx(0.6)  # tau1 / tau(1)
    assert fitted.step_time(1) == pytest.approx(SERVER.step_time(1))  # the scale is kept
    t0, c, _ = refit.fitted()
    np.testing.assert_allclose(t0, p.t0, rtol=1e-6)
    np.testing.assert_allclose(c, p.c, rtol=1e-6)


def test_the_refit_does_not_blame_the_batch_for_a_slower_machine() -> None:
    # served three times slower than profiled (a busy machine): the law is still the
    # truth's, and the solo lines are three times the profile's
    p = batched()
    clock = Clock(100.0)
    refit = LatencyRefit(p, window=60.0, clock=clock, min_samples=5)
    truth = Server(slots=4, tau0=0.006, tau1=0.009)
    rng = np.random.default_rng(5)
    for _ in range(300):
        task, tokens, batch = int(rng.integers(2)), int(rng.integers(20, 200)), rng.uniform(1, 4)
        solo = 3.0 * (p.t0[task] + p.c[task] * tokens)
        refit.observe(task, tokens, solo / truth.speed(batch), batch)
    fitted = refit.server()
    assert fitted is not None
    assert fitted.tau1 / fitted.step_time(1) == pytest.approx(0.6)
    t0, c, _ = refit.fitted()
    np.testing.assert_allclose(t0, 3.0 * p.t0, rtol=1e-6)
    np.testing.assert_allclose(c, 3.0 * p.c, rtol=1e-6)


def test_a_measured_step_table_is_kept_by_the_refit() -> None:
    table = Server(slots=4, tau0=0.002, tau1=0.005, steps=((1, 0.007), (2, 0.0145), (4, 0.0215)))
    p = profile(rate=4.0, server=table)
    refit = LatencyRefit(p, window=60.0, clock=Clock(100.0), min_samples=1)
    for batch in (1.0, 2.0, 3.0, 4.0):
        refit.observe(0, 50, 2.0, batch)
    assert refit.server() == table


def test_admission_counts_departures_at_the_batch_capacity() -> None:
    async def main() -> None:
        async with gateway_client(FakeServer(), profile=batched(), concurrency=4) as (_, g):
            plan = g.controller.plan
            for _ in range(6):  # four in service, two waiting
                g.queue.enter()
            # the new request waits for three departures, each E[S] / C(B) apart
            expected = 3 * plan.mean_service / SERVER.max_capacity
            assert g.admission.predicted_wait() == pytest.approx(expected)

    asyncio.run(main())


def test_a_concurrency_other_than_the_slots_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_document(tmp_path / "profile.json", batched().to_dict())
    result = CliRunner().invoke(
        app,
        ["serve", "--profile", str(path), "--upstream", "http://127.0.0.1:9/v1",
         "--concurrency", "2"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("error: option --concurrency: 2 differs from the profile's")
    assert "server.slots = 4" in result.stderr
    assert result.stderr.count("\n") == 1
