"""The live page at ``/thinkq/`` over HTTP: sign-in, its JSON against ``/thinkq/state``,
the history and re-solve log, the frontier, and the size of it all at 10,000 types."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest

from fakes import Clock, FakeServer, profile
from test_serve_app import CHAT, gateway_client
from thinkq import Profile
from thinkq.serve import Gateway
from thinkq.serve.controller import Plan
from thinkq.serve.dashboard.auth import COOKIE, token
from thinkq.serve.dashboard.frontier import MAX_AGE, MIN_INTERVAL, FrontierCache
from thinkq.serve.dashboard.history import LOG_LENGTH, MOVES_SHOWN
from thinkq.serve.dashboard.summary import MAX_ROWS

KEY = "s3cret-key"
BEARER = {"Authorization": f"Bearer {KEY}"}
HTML = {"Accept": "text/html,application/xhtml+xml"}
TIMEOUT = 60.0
#: /thinkq/dashboard.json at 10,000 task types stays under this many bytes.
SIZE_BOUND = 64 * 1024
PAGE_PATHS = ("/thinkq/", "/thinkq/dashboard.json", "/thinkq/dashboard.js", "/thinkq/state")


def run(scenario: Any, upstream: FakeServer | None = None, **options: Any) -> None:
    async def main() -> None:
        async with gateway_client(upstream or FakeServer(), **options) as (client, gateway):
            await asyncio.wait_for(scenario(client, gateway), TIMEOUT)

    asyncio.run(main())


async def signed_in(client: httpx.AsyncClient) -> httpx.Response:
    """Sign in with ?key= (the cookie lands in the client's jar); the 303."""
    reply = await client.get("/thinkq/", params={"key": KEY})
    assert reply.status_code == 303
    return reply


# ------------------------------------------------------------------ sign-in


def test_page_and_its_json_need_the_key_in_every_form() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        wrong_cookie = {"Cookie": f"{COOKIE}={token(b'another key')}"}
        for path in PAGE_PATHS:
            assert (await client.get(path)).status_code == 401, path
            assert (
                await client.get(path, headers={"Authorization": "Bearer nope"})
            ).status_code == 401
            assert (await client.get(path, params={"key": "nope"})).status_code == 401
            assert (await client.get(path, params={"key": ""})).status_code == 401
            assert (await client.get(path, headers=wrong_cookie)).status_code == 401
            assert (
                await client.get(path, headers={"Cookie": f"{COOKIE}={KEY}"})
            ).status_code == 401
            assert (await client.get(path, headers=BEARER)).status_code == 200, path
        assert not client.cookies
        assert (await client.get("/healthz")).status_code == 200

    run(scenario, api_key=KEY)


def test_a_browser_without_the_key_gets_401_with_a_sign_in_form() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        assert (await client.get("/thinkq", headers=HTML)).status_code == 401
        reply = await client.get("/thinkq/", headers=HTML)
        assert reply.status_code == 401
        assert reply.headers["content-type"].startswith("text/html")
        assert '<form method="get" action="/thinkq/">' in reply.text
        assert 'name="key"' in reply.text
        assert "Wrong key" not in reply.text
        wrong = await client.get("/thinkq/", params={"key": "nope"}, headers=HTML)
        assert wrong.status_code == 401
        assert "Wrong key" in wrong.text
        assert "set-cookie" not in wrong.headers

    run(scenario, api_key=KEY)


def test_the_right_key_in_the_query_redirects_with_an_http_only_strict_cookie() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        reply = await signed_in(client)
        assert reply.headers["location"] == "/thinkq/"
        cookie = reply.headers["set-cookie"]
        value = token(KEY.encode())
        assert cookie.startswith(f"{COOKIE}={value};")
        assert KEY not in cookie
        assert KEY not in value
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/thinkq", "samesite=strict"} <= attributes
        assert reply.headers["referrer-policy"] == "no-referrer"
        page = await client.get("/thinkq/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for path in PAGE_PATHS[1:]:
            assert (await client.get(path)).status_code == 200, path
        script = await client.get("/thinkq/static/plot.js")
        assert script.status_code == 200
        assert "ThinkqPlot" in script.text
        bare = await client.get("/thinkq", params={"key": KEY})
        assert bare.status_code == 303
        assert bare.headers["location"] == "/thinkq/"
        assert (await client.get("/thinkq", follow_redirects=True)).status_code == 200
        deeper = await client.get("/thinkq/state", params={"key": KEY})
        assert deeper.status_code == 303
        assert deeper.headers["location"] == "/thinkq/state"

    run(scenario, api_key=KEY)


def test_the_cookie_opens_no_generation_endpoint_and_no_write() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        await signed_in(client)
        assert (await client.get("/thinkq/state")).status_code == 200
        for path in ("/v1/chat/completions", "/v1/completions"):
            reply = await client.post(path, json=CHAT)
            assert reply.status_code == 401, path
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.post("/thinkq/dashboard.json")).status_code == 401
        # the same request with the key as a Bearer header is served
        ok = await client.post("/v1/chat/completions", json=CHAT, headers=BEARER)
        assert ok.status_code == 200

    run(scenario, api_key=KEY)


def test_the_key_sent_in_the_query_reaches_no_log(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        await signed_in(client)
        await client.get("/thinkq/", params={"key": "wrong-" + KEY})
        await client.get("/thinkq/dashboard.json")
        await client.post("/v1/chat/completions", json=CHAT, headers=BEARER)  # logged

    with caplog.at_level(logging.DEBUG):
        run(scenario, api_key=KEY)
    # the test's own client logs its requests (httpx, "gateway.test"): not the gateway's
    gateways = [r for r in caplog.records if "gateway.test" not in r.getMessage()]
    assert any(r.name.startswith("thinkq") for r in gateways)  # the request was logged
    assert all(KEY not in r.getMessage() for r in gateways)


def test_without_a_key_the_page_is_open_like_every_endpoint() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        assert (await client.get("/thinkq/")).status_code == 200
        assert (await client.get("/thinkq/dashboard.json")).status_code == 200

    run(scenario)


# ------------------------------------------------------------------ figures


def test_the_json_figures_are_those_of_the_state_endpoint() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(3):
            reply = await client.post("/v1/chat/completions", json=CHAT, headers=BEARER)
            assert reply.status_code == 200
        gateway.resolve()
        state = (await client.get("/thinkq/state", headers=BEARER)).json()
        data = (await client.get("/thinkq/dashboard.json", headers=BEARER)).json()
        assert data["model"] == state["model"]
        assert data["mode"] == state["mode"]
        per_type = {"model", "mode", "budgets", "shares_estimate", "latency"}
        assert data["figures"] == {k: v for k, v in state.items() if k not in per_type}
        rows = data["budgets"]["rows"]
        assert data["budgets"]["all_rows"]
        assert [r["task"] for r in rows] == ["math", "chat"]
        assert {r["task"]: r["budget"] for r in rows} == state["budgets"]
        assert {r["task"]: r["share"] for r in rows} == state["shares_estimate"]
        assert {r["task"]: {"t0": r["t0"], "c": r["c"]} for r in rows} == state["latency"]
        p = profile()
        for i, r in enumerate(rows):
            l = state["budgets"][r["task"]]
            assert r["accuracy"] == pytest.approx(p.A[i] * (1 - np.exp(-p.b[i] * l)) + p.D[i])
            assert r["service_time"] == pytest.approx(p.t0[i] + p.c[i] * l)
        assert sum(data["budgets"]["histogram"]["types"]) == 2

    run(scenario, api_key=KEY)


def test_history_and_the_resolve_log_fill_as_the_load_changes() -> None:
    clock = Clock(1000.0)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        first = (await client.get("/thinkq/dashboard.json")).json()["history"]
        assert first["resolves"] == 1
        assert len(first["log"]) == 1
        assert first["log"][0]["moved"] == 0
        assert len(first["samples"]["age"]) == 1
        budgets = [gateway.state()["budgets"]]
        overloaded = [False]
        for step in range(1, 6):  # the load rises to 1.5/s more each step (zero budgets: 10/s)
            for _ in range(15 * step):
                clock.now += 1 / (1.5 * step)
                gateway.estimator.arrival(0)
            gateway.resolve()
            budgets.append(gateway.state()["budgets"])
            overloaded.append(gateway.state()["overloaded"])
        data = (await client.get("/thinkq/dashboard.json")).json()
        history = data["history"]
        assert history["resolves"] == 6
        samples = history["samples"]
        assert len(samples["age"]) == 6
        assert samples["age"] == sorted(samples["age"], reverse=True)
        assert samples["age"][-1] == 0.0
        assert samples["age"][0] == pytest.approx(clock.now - 1000)
        rates = samples["rate"]
        assert rates == sorted(rates)
        assert rates[-1] > 3 * rates[1]
        assert samples["predicted"][-1] == pytest.approx(
            data["figures"]["predicted_mean_system_time"]
        )
        assert not any(overloaded)
        switches = [b for a, b in itertools.pairwise(budgets) if a != b]
        assert len(switches) >= 3  # the rising load moved the budgets
        log = history["log"]
        assert len(log) == 1 + len(switches)
        newest = log[0]
        before, after = budgets[-2], budgets[-1]
        moved = [t for t in after if after[t] != before[t]]
        assert newest["moved"] == len(moved)
        assert {m["task"]: (m["before"], m["after"]) for m in newest["moves"]} == {
            t: (before[t], after[t]) for t in moved
        }
        assert newest["rate"] == pytest.approx(rates[-1])
        assert [e["age"] for e in log] == sorted(e["age"] for e in log)

    run(scenario, clock=clock, window=30.0)


def test_samples_are_spaced_and_bounded_and_the_log_is_bounded() -> None:
    clock = Clock(0.0)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        history = gateway.history
        history.every, history.horizon = 5.0, 60.0
        for _ in range(100):  # a re-solve a second: a sample every 5 s, a minute kept
            clock.now += 1.0
            gateway.resolve()
        ages = history.to_dict()["samples"]["age"]
        assert 12 <= len(ages) <= 13
        assert max(ages) <= 60.0
        assert all(b - a >= 4.5 for a, b in zip(ages[1:], ages, strict=False))
        for k in range(2 * LOG_LENGTH):  # every re-solve moves a budget
            gateway.controller.adopt(replace(gateway.controller.plan, budgets=(k, k + 1)))
            gateway.announce(gateway.controller.plan)
        log = history.to_dict()["log"]
        assert len(log) == LOG_LENGTH
        assert log[0]["moves"] == [
            {"task": "math", "before": 2 * LOG_LENGTH - 2, "after": 2 * LOG_LENGTH - 1},
            {"task": "chat", "before": 2 * LOG_LENGTH - 1, "after": 2 * LOG_LENGTH},
        ]

    run(scenario, clock=clock)


def test_objectives_are_sampled_predicted_and_measured() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(4):
            reply = await client.post("/v1/chat/completions", json=CHAT)
            assert reply.status_code == 200
        gateway.history.every = 0.0
        gateway.resolve()
        state = (await client.get("/thinkq/state")).json()
        data = (await client.get("/thinkq/dashboard.json")).json()
        assert data["figures"]["slo"] == state["slo"]
        (objective,) = state["slo"]["objectives"]
        assert objective["objective"] == "p95<=2s"
        assert objective["measured"] is not None
        samples = data["history"]["samples"]
        assert len(samples["slo"]) == 2  # at start (nothing served yet), after the re-solve
        ((predicted, measured),) = samples["slo"][0]
        assert predicted > 0
        assert measured is None
        assert samples["slo"][-1] == [[objective["predicted"], objective["measured"]]]

    run(scenario, objectives=["p95<=2s"])


async def frontier_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """The dashboard's frontier once traced (in a worker thread)."""
    for _ in range(600):
        data = (await client.get("/thinkq/dashboard.json")).json()
        if data["frontier"] is not None and data["frontier"]["current"]:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError("the frontier was never traced")


def test_the_frontier_is_traced_off_the_loop_with_the_plan_on_it() -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        data = await frontier_of(client)
        frontier = data["frontier"]
        points = frontier["points"]
        assert points[0]["alpha"] == 0
        assert len(points) == 12
        accuracy = [p["accuracy"] for p in points]
        assert accuracy == sorted(accuracy)
        op = frontier["operating_point"]
        assert op["mean_system_time"] == data["figures"]["predicted_mean_system_time"]
        assert accuracy[0] <= op["accuracy"] <= accuracy[-1] + 1e-9
        assert frontier["rate"] == data["figures"]["rate_estimate"]
        assert "budgets" not in points[0]

    run(scenario)


def test_no_frontier_while_overloaded_and_the_page_says_why() -> None:
    clock = Clock(0.0)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(400):  # 100/s: even zero budgets (0.1 s each) are unstable
            clock.now += 0.01
            gateway.estimator.arrival(0)
        assert gateway.resolve().overloaded
        for _ in range(200):
            data = (await client.get("/thinkq/dashboard.json")).json()
            if data["frontier_error"] is not None:
                break
            await asyncio.sleep(0.05)
        assert data["frontier"] is None
        assert data["frontier_error"] == "overloaded: even zero budgets are unstable"
        assert data["figures"]["overloaded"]
        assert data["history"]["log"][0]["overloaded"]

    run(scenario, clock=clock, window=4.0)


def test_the_frontier_is_traced_again_only_when_the_load_moved() -> None:
    clock = Clock(100.0)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        cache = FrontierCache(gateway.controller.at, clock=clock)
        plan = gateway.controller.plan
        traces = 0

        async def ask(plan: Plan) -> dict[str, Any] | None:
            nonlocal traces
            before = cache.task
            value = cache.get(plan)
            if cache.task is not before:
                traces += 1
                await cache.task  # type: ignore[misc]
            return value

        assert await ask(plan) is None  # the first trace starts
        assert (await ask(plan))["current"]  # type: ignore[index]
        near = replace(plan, rate=plan.rate * 1.01)  # the same budgets, 1 % more load
        assert (await ask(near))["current"]  # type: ignore[index]
        other = replace(plan, rate=plan.rate * 1.5, budgets=(1, 2))
        assert not (await ask(other))["current"]  # type: ignore[index]  # too soon
        assert traces == 1
        clock.now += MIN_INTERVAL
        await ask(other)  # moved, and due: traced again
        assert traces == 2
        assert cache.get(other)["rate"] == other.rate  # type: ignore[index]
        clock.now += MAX_AGE
        await ask(replace(other))  # a new plan, the same load, but the trace is old
        assert traces == 3

    run(scenario, clock=clock)


# ------------------------------------------------------------------ 10,000 types


def large_profile(n: int = 10_000) -> Profile:
    rng = np.random.default_rng(7)
    return Profile.from_arrays(
        names=[f"type{i:05d}" for i in range(n)], share=rng.pareto(1.5, n) + 0.01,
        A=rng.uniform(0.2, 0.6, n), b=rng.uniform(0.005, 0.05, n), D=rng.uniform(0.1, 0.35, n),
        t0=rng.uniform(0.05, 0.2, n), c=rng.uniform(0.001, 0.01, n), rate=2.0, alpha=5.0,
        max_tokens=400, default_task="type00000",
    )  # fmt: skip


def test_ten_thousand_types_give_a_small_summary() -> None:
    big = large_profile()

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        data = await frontier_of(client)
        size = len(json.dumps(data).encode())
        assert size < SIZE_BOUND, size
        summary = data["budgets"]
        assert summary["types"] == 10_000
        assert not summary["all_rows"]
        rows = summary["rows"]
        assert len(rows) == MAX_ROWS
        state = gateway.state()
        largest = sorted(state["shares_estimate"].values(), reverse=True)[:MAX_ROWS]
        assert [r["share"] for r in rows] == largest
        assert all(r["budget"] == state["budgets"][r["task"]] for r in rows)
        assert sum(summary["histogram"]["types"]) == 10_000
        assert sum(summary["histogram"]["share"]) == pytest.approx(1.0)
        budgets = np.array(list(state["budgets"].values()))
        assert summary["zero_budget"] == int(np.sum(budgets == 0))
        assert summary["max_budget"] == budgets.max()
        assert summary["min_budget"] == budgets.min()
        assert len(data["frontier"]["points"]) == 12
        assert len(json.dumps(state).encode()) > 10 * SIZE_BOUND  # what the summary avoids

    run(scenario, profile=big)


def test_moves_listed_per_resolve_are_the_largest_of_many() -> None:
    big = large_profile(200)
    clock = Clock(0.0)

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for _ in range(400):  # ten times the prior rate: every budget falls
            clock.now += 0.05
            gateway.estimator.arrival(0)
        before = gateway.state()["budgets"]
        gateway.resolve()
        after = gateway.state()["budgets"]
        entry = gateway.history.to_dict()["log"][0]
        changes = {t: after[t] - before[t] for t in after if after[t] != before[t]}
        assert entry["moved"] == len(changes) > MOVES_SHOWN
        listed = [abs(m["after"] - m["before"]) for m in entry["moves"]]
        assert len(listed) == MOVES_SHOWN
        assert listed == sorted(listed, reverse=True)
        assert listed[-1] >= sorted(map(abs, changes.values()), reverse=True)[MOVES_SHOWN - 1]

    run(scenario, profile=big, clock=clock)
