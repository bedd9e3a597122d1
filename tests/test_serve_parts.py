"""The gateway's parts: estimator, controller, queue, routing, and the profile's routing fields."""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path

import numpy as np
import pytest

import thinkq
from conftest import Document, write_document
from fakes import Clock, profile
from thinkq import ProfileError, load_profile
from thinkq.errors import DisconnectedError, QueueFullError
from thinkq.serve import Controller, Estimator, Queue, Router, RoutingError
from thinkq.serve.disconnect import until_disconnected
from thinkq.serve.refit import LatencyRefit


def test_the_rate_moves_from_the_prior_to_the_observed_rate_over_the_first_window() -> None:
    clock = Clock()
    estimator = Estimator(
        prior_rate=1.0, prior_shares=np.array([0.5, 0.5]), window=10.0, clock=clock
    )
    assert estimator.estimate().rate == pytest.approx(1.0)
    clock.now = 5.0
    for _ in range(15):
        estimator.arrival(0)
    # half the window observed (15 arrivals), half at the prior (5 expected)
    assert estimator.estimate().rate == pytest.approx(2.0)
    clock.now = 10.0
    estimate = estimator.estimate()
    assert estimate.rate == pytest.approx(1.5)
    np.testing.assert_allclose(estimate.shares, [15.5 / 16, 0.5 / 16])
    clock.now = 15.1  # the arrivals at t = 5 left the window
    assert estimator.estimate().rate == 0.0
    np.testing.assert_allclose(estimator.estimate().shares, [0.5, 0.5])


def test_the_prior_fades_after_its_time_even_in_a_long_window() -> None:
    # a window much longer than the run: the profile's rate (1/s) is worth 60 s of
    # observation, not the whole unobserved rest of the window
    clock = Clock()
    estimator = Estimator(
        prior_rate=1.0, prior_shares=np.array([0.5, 0.5]), window=1800.0, clock=clock,
        prior_time=60.0,
    )  # fmt: skip
    assert estimator.estimate().rate == pytest.approx(1.0)
    for k in range(300):  # 0.5/s for 600 s
        clock.now = 2.0 * (k + 1)
        estimator.arrival(k % 2)
    assert estimator.estimate().rate == pytest.approx((300 + 60.0) / (600 + 60))
    clock.now = 1770.0  # less than prior_time of the window left: the rest counts
    assert estimator.estimate().rate == pytest.approx((300 + 30.0) / 1800)
    clock.now = 1800.0
    assert estimator.estimate().rate == pytest.approx(300 / 1800)
    with pytest.raises(ValueError, match="prior_time"):
        Estimator(prior_rate=1.0, prior_shares=np.array([1.0]), window=10.0, prior_time=-1)


def test_the_controller_keeps_its_budgets_for_a_tiny_gain_and_switches_for_a_real_one() -> None:
    clock = Clock()
    p = profile()
    estimator = Estimator(prior_rate=p.rate, prior_shares=p.share, window=100.0, clock=clock)
    controller = Controller(p, estimator, hysteresis=1e-3)
    first = controller.plan.budgets
    assert list(first) == thinkq.solve(p).budgets.tolist()
    clock.now = 100.0
    for k in range(24):  # 0.24/s instead of 0.2/s: other budgets, but J gains < 0.1%
        estimator.arrival(k % 2)
    plan = controller.resolve()
    point = controller.at(estimator.estimate())
    best = thinkq.solve(point).budgets
    assert tuple(best.tolist()) != first
    gain = thinkq.model.objective(point, best) - thinkq.model.objective(point, first)
    assert 0 < gain <= 1e-3 * abs(thinkq.model.objective(point, first))
    assert plan.budgets == first
    assert not plan.switched
    for _ in range(100):  # 1.24/s: the solver's budgets, lower
        estimator.arrival(0)
    plan = controller.resolve()
    assert plan.switched
    assert all(new <= old for new, old in zip(plan.budgets, first, strict=True))
    with pytest.raises(ValueError, match="hysteresis"):
        Controller(p, estimator, hysteresis=-1.0)


def test_the_latency_refit_recovers_t0_then_the_slope_and_forgets_old_data() -> None:
    clock = Clock()
    p = profile()  # t0 = 0.1 s, c = 0.01 s/token
    refit = LatencyRefit(p, window=10.0, clock=clock, min_samples=4, min_spread=8)
    for _ in range(3):
        refit.observe(0, 20, 0.5 + 0.01 * 20)
    t0, c, _ = refit.fitted()
    assert t0[0] == pytest.approx(0.1)  # too few observations: the profile's
    refit.observe(0, 20, 0.5 + 0.01 * 20)
    t0, c, variance = refit.fitted()
    assert t0[0] == pytest.approx(0.5)  # one budget: t0 with the profile's slope
    assert c[0] == pytest.approx(0.01)
    assert variance[0] == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for tokens in rng.integers(0, 64, size=200):
        refit.observe(1, int(tokens), 0.3 + 0.02 * tokens + rng.normal(0, 0.01))
    t0, c, variance = refit.fitted()
    assert t0[1] == pytest.approx(0.3, abs=0.01)
    assert c[1] == pytest.approx(0.02, rel=0.02)
    assert variance[1] == pytest.approx(1e-4, rel=0.3)
    clock.now = 11.0  # everything left the window
    t0, c, _ = refit.fitted()
    np.testing.assert_allclose(t0, p.t0)
    np.testing.assert_allclose(c, p.c)


def test_a_slower_server_than_profiled_lowers_the_budgets_with_refit() -> None:
    clock = Clock()
    p = profile()
    estimator = Estimator(prior_rate=p.rate, prior_shares=p.share, window=10.0, clock=clock)
    refit = LatencyRefit(p, window=10.0, clock=clock, min_samples=4)
    controller = Controller(p, estimator, refit=refit)
    before = controller.plan
    for task in (0, 1):
        for _ in range(4):
            refit.observe(task, before.budgets[task], 1.0 + 0.01 * before.budgets[task])
    after = controller.resolve()
    assert after.t0 == pytest.approx((1.0, 1.0))
    assert after.utilization > before.utilization
    assert all(a <= b for a, b in zip(after.budgets, before.budgets, strict=True))
    assert after.budgets != before.budgets


def test_the_queue_is_fifo_and_a_cancelled_waiter_leaves_it() -> None:
    async def main() -> None:
        queue = Queue(concurrency=1, max_queue=2)
        order: list[str] = []
        await queue.acquire()

        async def client(name: str) -> None:
            async with queue.slot():
                order.append(name)

        first = asyncio.create_task(client("first"))
        leaving = asyncio.create_task(client("leaving"))
        await asyncio.sleep(0)
        assert queue.waiting == 2
        assert queue.full()
        with pytest.raises(QueueFullError):
            await queue.acquire()
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        assert queue.waiting == 1
        last = asyncio.create_task(client("last"))
        await asyncio.sleep(0)
        queue.release()
        await asyncio.gather(first, last)
        assert order == ["first", "last"]
        assert queue.busy == 0
        assert queue.waiting == 0

    asyncio.run(main())


def test_routing_precedence_header_metadata_rules_default() -> None:
    router = Router(profile(match=[[r"(?i)\bsolve\b", r"\d\s*\+"], ["^hello"]]))
    assert router.route(header="chat", metadata={"task": "math"}, text="solve") == 1
    assert router.route(header=None, metadata={"task": "math"}, text="hello") == 0
    assert router.route(header=None, metadata=None, text="Please SOLVE it") == 0
    assert router.route(header=None, metadata={}, text="hello world") == 1
    assert router.route(header=None, metadata=None, text="what?") == 1  # default_task
    with pytest.raises(RoutingError, match="X-Thinkq-Task: unknown task 'poetry'"):
        router.route(header="poetry", metadata=None, text="")
    with pytest.raises(RoutingError, match="no task"):
        Router(profile(default_task=None)).route(header=None, metadata=None, text="what?")


def test_profile_files_carry_match_rules_and_a_default_task(
    tmp_path: Path, paper_doc: Document
) -> None:

    paper_doc["default_task"] = "GSM8K"
    paper_doc["tasks"][0]["match"] = ["(?i)aime", r"\\boxed"]
    loaded = load_profile(write_document(tmp_path / "p.toml", paper_doc))
    assert loaded.default_task == "GSM8K"
    assert loaded.match[0] == ("(?i)aime", r"\\boxed")
    assert loaded.match[1] == ()
    again = load_profile(write_document(tmp_path / "again.json", loaded.to_dict()))
    assert again.match == loaded.match
    assert again.default_task == "GSM8K"
    assert thinkq.solve(again).budgets.tolist() == thinkq.solve(loaded).budgets.tolist()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"default_task": "Poetry"}, "field 'default_task': no task is named 'Poetry'"),
        ({"default_task": 3}, "field 'default_task': expected a task name"),
        ({"match": ["(unclosed"]}, "task 'AIME': field 'match': invalid regular expression"),
        ({"match": "aime"}, "task 'AIME': field 'match': expected a list"),
    ],
)
def test_bad_routing_fields_are_one_line_errors(
    tmp_path: Path, paper_doc: Document, edit: dict[str, object], message: str
) -> None:

    if "match" in edit:
        paper_doc["tasks"][0]["match"] = edit["match"]
    else:
        paper_doc |= edit
    path = write_document(tmp_path / "bad.json", paper_doc)
    with pytest.raises(ProfileError, match=message.replace("(", r"\(")) as caught:
        load_profile(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_the_serve_package_exports_its_api() -> None:
    import thinkq.serve as serve

    assert serve.__all__ == sorted(serve.__all__)
    public = {
        name
        for name, value in vars(serve).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public == set(serve.__all__)


def test_until_disconnected_tells_a_client_that_left_from_a_cancelled_task() -> None:
    async def main() -> None:
        gone = asyncio.Event()

        async def disconnected() -> None:
            await gone.wait()

        async def work(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "done"

        assert await until_disconnected(work(0), disconnected) == "done"
        cancelled = asyncio.Event()

        async def slow() -> str:
            try:
                return await work(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        leaving = asyncio.create_task(until_disconnected(slow(), disconnected))
        await asyncio.sleep(0.01)
        gone.set()
        with pytest.raises(DisconnectedError):
            await leaving
        assert cancelled.is_set()  # the work was cancelled, not left running
        gone.clear()
        stopped = asyncio.create_task(until_disconnected(work(10), disconnected))
        await asyncio.sleep(0.01)
        stopped.cancel()  # a server shutting down, not a client leaving
        with pytest.raises(asyncio.CancelledError):
            await stopped

    asyncio.run(main())


def test_until_disconnected_watches_the_client_only_once_the_work_lasts() -> None:
    async def main() -> None:
        gone, watches = asyncio.Event(), [0]

        async def disconnected() -> None:
            watches[0] += 1
            await gone.wait()

        async def work(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "done"

        assert await until_disconnected(work(0.01), disconnected, after=0.2) == "done"
        assert watches == [0]  # the work ended first: no watch was started
        gone.set()  # the client leaves at once, before the watch starts
        start = time.perf_counter()
        leaving = asyncio.create_task(until_disconnected(work(10), disconnected, after=0.1))
        await asyncio.sleep(0.02)
        assert not leaving.done()
        with pytest.raises(DisconnectedError):
            await leaving
        assert watches == [1]
        assert time.perf_counter() - start >= 0.1

    asyncio.run(main())
