"""The live page in a real browser (headless Chromium, :mod:`browser`) against a running
gateway: uvicorn configured as ``thinkq serve`` configures it, in a thread, in front of
a paced stub upstream on a loopback port (:mod:`loopback`) that takes t0 + c l seconds
per request. The page must show what ``/thinkq/state`` says within one update period,
use nothing outside the gateway, refuse a wrong key, and keep the key out of the logs.
The test writes ``docs/screenshots/dashboard.png``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from browser import Browser, chromium, free_port, screenshot
from conftest import write_document
from fakes import MODEL, FakeServer
from loopback import serving
from test_dashboard import large_profile
from thinkq import Profile
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app
from thinkq.serve.connections import server_config
from thinkq.serve.dashboard import POLL_SECONDS

KEY = "browser-test-key-0123"
BEARER = {"Authorization": f"Bearer {KEY}"}
T0, C = 0.05, 0.002  # the stub's service time: T0 + C * thinking tokens, seconds
TASKS = ("gsm8k", "arc_challenge", "mmlu_pro", "humaneval")
SHARES = (0.4, 0.25, 0.2, 0.15)
#: Seconds beyond the update period that a draw may take on a busy machine.
SLACK = 2.0
BOUND = 60.0  # seconds: only to turn a hang into a failure
OBJECTIVE = "p95<=1s"  # binds at every load of the test: the budgets follow it


def four_types() -> Profile:
    return Profile.from_arrays(
        names=list(TASKS), share=list(SHARES), A=[0.55, 0.35, 0.3, 0.6],
        b=[0.02, 0.05, 0.03, 0.01], D=[0.3, 0.45, 0.35, 0.1], t0=[T0] * 4, c=[C] * 4,
        rate=2.0, alpha=5.0, max_tokens=400, default_task="gsm8k",
    )  # fmt: skip


class Paced(FakeServer):
    """The fake upstream taking T0 + C * l seconds for a forced request of l tokens."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/completions":
            body = json.loads(request.content)
            thinking = body.get("max_tokens", 0) if "logit_bias" in body else 0
            await asyncio.sleep(T0 / 2 + C * thinking)
        return await super().handle(request)


@contextmanager
def running(gateway: Gateway) -> Iterator[str]:
    """``gateway`` behind ``thinkq serve``'s uvicorn configuration on a loopback port, in a
    thread with its own event loop; yields the base URL."""
    port = free_port()
    app = create_app(gateway, api_key=KEY)
    config = server_config(app, host="127.0.0.1", port=port, log_level="info")
    server = uvicorn.Server(config)

    async def main() -> None:
        async with gateway:
            await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not server.started:
        assert thread.is_alive(), "the gateway stopped"
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(BOUND)


class States:
    """``/thinkq/state`` read every 0.1 s in a thread: (wall-clock time, state) pairs,
    the time halfway through each request."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, headers=BEARER, timeout=10) as client:
            while not self.stop.is_set():
                asked = time.time()
                state = client.get("/thinkq/state").json()
                self.seen.append(((asked + time.time()) / 2, state))
                self.stop.wait(0.1)

    def __enter__(self) -> States:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(BOUND)

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for t, s in list(self.seen) if start <= t <= end]

    def last(self) -> dict[str, Any]:
        return self.seen[-1][1]


def send_load(base: str, phases: list[tuple[float, float]], seed: int = 1) -> list[int]:
    """Poisson arrivals at each (rate per second, seconds) phase; the statuses."""
    rng = np.random.default_rng(seed)
    body = {"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 4}
    with (
        httpx.Client(base_url=base, headers=BEARER, timeout=BOUND) as client,
        ThreadPoolExecutor(max_workers=48) as pool,
    ):
        futures = []
        for rate, seconds in phases:
            end = time.monotonic() + seconds
            while (now := time.monotonic()) < end:
                task = str(rng.choice(TASKS, p=SHARES))
                headers = {"X-Thinkq-Task": task}
                futures.append(pool.submit(client.post, "/v1/chat/completions", json=body,
                                           headers=headers))  # fmt: skip
                time.sleep(min(rng.exponential(1 / rate), max(end - now, 0)))
        return [f.result().status_code for f in futures]


SHOWN = """() => {
  const value = (selector) => document.querySelector(selector)?.dataset.value ?? null;
  return {
    fetched: Number(document.body.dataset.fetched), drawn: Number(document.body.dataset.drawn),
    rate: value("#rate"), utilization: value("#utilization"), predicted: value("#predicted"),
    objectives: [...document.querySelectorAll("#slo-table tr[data-objective]")].map((tr) => ({
      objective: tr.dataset.objective, predicted: tr.querySelector(".predicted").dataset.value,
    })),
    rows: [...document.querySelectorAll("#budgets-table tr[data-task]")].map((tr) => ({
      task: tr.dataset.task,
      budget: tr.querySelector(".budget").dataset.value,
      budgetText: tr.querySelector(".budget").textContent,
      share: tr.querySelector(".share").dataset.value,
    })),
  };
}"""


def shown(browser: Browser) -> dict[str, Any]:
    values: dict[str, Any] = browser.page.evaluate(SHOWN)
    return values


def number(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)


def agrees(page: dict[str, Any], state: dict[str, Any]) -> bool:
    """Whether the page's figures are exactly ``state``'s (budgets, rate, shares, ...)."""
    return (
        number(page["rate"]) == state["rate_estimate"]
        and number(page["utilization"]) == state["utilization"]
        and number(page["predicted"]) == state["predicted_mean_system_time"]
        and {r["task"]: int(r["budget"]) for r in page["rows"]} == state["budgets"]
        and all(r["budgetText"] == r["budget"] for r in page["rows"])
        and {r["task"]: float(r["share"]) for r in page["rows"]} == state["shares_estimate"]
        and [(o["objective"], number(o["predicted"])) for o in page["objectives"]]
        == [(o["objective"], o["predicted"]) for o in (state["slo"] or {}).get("objectives", [])]
    )


def check_against_state(browser: Browser, states: States) -> dict[str, Any]:
    """The page's figures are the state's when it asked for them, and that was within one
    update period (plus the time its request took, plus :data:`SLACK`)."""
    browser.page.wait_for_selector("#budgets-table tr[data-task]")
    page = shown(browser)
    read = time.time()
    assert read - page["drawn"] <= POLL_SECONDS + SLACK, page  # the page keeps updating
    time.sleep(0.3)  # the state poller's next readings
    # the state answered the page's request between its ask and its draw; the poller
    # reads it every 0.1 s, and a plan stays in force for a re-solve period (0.5 s)
    during = states.between(page["fetched"] - 0.2, page["drawn"] + 0.2)
    assert during, "no state read while the page asked"
    ago = [round(read - t, 2) for t, s in list(states.seen) if agrees(page, s)]
    assert any(agrees(page, s) for s in during), f"shown {page}; the state's {ago} s before"
    return page


def until(condition: Callable[[], Any], timeout: float = BOUND) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def watch_console(browser: Browser) -> list[str]:
    errors: list[str] = []
    browser.page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser.page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_the_live_page_follows_the_gateway_in_a_real_browser(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(Paced()) as upstream:
        server = Server(upstream, MODEL, timeout=BOUND)
        gateway = Gateway(
            four_types(), server, template=TEMPLATES["chatml"], resolve_every=0.5, window=8.0,
            max_wait=10.0, max_queue=256, objectives=[OBJECTIVE],
        )  # fmt: skip
        gateway.history.every = 0.5  # a sample per re-solve, so that a short test has a chart
        with running(gateway) as base, States(base) as states, chromium() as browser:
            errors = watch_console(browser)
            refused = browser.page.goto(f"{base}/thinkq/?key=not-{KEY}")
            assert refused is not None
            assert refused.status == 401
            assert "Wrong key" in browser.page.content()
            assert browser.page.goto(f"{base}/thinkq/").status == 401  # type: ignore[union-attr]
            load = ThreadPoolExecutor(max_workers=1)
            statuses = load.submit(send_load, base, [(2.0, 8.0), (4.0, 10.0), (1.0, 8.0)])
            signed = browser.page.goto(f"{base}/thinkq/?key={KEY}")
            assert signed is not None
            assert signed.status == 200
            assert browser.page.url == f"{base}/thinkq/"  # the key left the address bar
            errors.clear()  # (the two 401s above were logged as failed loads)
            checks = []
            while not statuses.done():
                checks.append(check_against_state(browser, states))
                time.sleep(1.5)
            codes = statuses.result()
            load.shutdown()
            page = check_against_state(browser, states)
            until(lambda: browser.page.locator("#frontier-chart svg").count() > 0)
            until(lambda: browser.page.locator("#resolves-table tbody tr").count() >= 3)
            time.sleep(POLL_SECONDS + 0.5)  # one more update: the frontier's final note
            screenshot(browser.page, "dashboard")
            origin = base
            outside = browser.outside(origin)
            log_rows = browser.page.locator("#resolves-table tbody tr").count()
            switched = {tuple(s["budgets"].values()) for _, s in states.seen}
    assert codes.count(200) >= 0.9 * len(codes) > 60, codes
    assert len(checks) >= 8
    assert len(switched) >= 3  # the load moved the budgets while the page was checked
    assert len(page["rows"]) == 4
    assert [o["objective"] for o in page["objectives"]] == [OBJECTIVE]
    assert log_rows >= 3
    assert outside == []
    assert errors == []
    messages = [r.getMessage() for r in caplog.records]
    assert all(KEY not in m for m in messages)
    assert any("budgets switched" in m for m in messages)


def test_ten_thousand_types_render_in_a_real_browser() -> None:
    with serving(FakeServer()) as upstream:
        server = Server(upstream, MODEL, timeout=BOUND)
        gateway = Gateway(large_profile(), server, template=TEMPLATES["chatml"], resolve_every=0)
        with running(gateway) as base, States(base) as states, chromium() as browser:
            errors = watch_console(browser)
            assert browser.page.goto(f"{base}/thinkq/?key={KEY}").status == 200  # type: ignore[union-attr]
            until(lambda: browser.page.locator("#frontier-chart svg").count() > 0)
            page = shown(browser)
            bars = browser.page.locator("#budgets-chart .tq-bar").count()
            note = browser.page.locator("#budgets-note").text_content() or ""
            state = states.last()
            outside = browser.outside(base)
    assert len(page["rows"]) == 20
    largest = sorted(state["shares_estimate"].items(), key=lambda kv: -kv[1])[:20]
    assert [r["task"] for r in page["rows"]] == [task for task, _ in largest]
    assert all(int(r["budget"]) == state["budgets"][r["task"]] for r in page["rows"])
    assert float(page["rate"]) == state["rate_estimate"]
    assert bars == 16
    assert "of 10000 task types" in note
    assert outside == []
    assert errors == []


def test_thinkq_serve_logs_the_page_url_and_never_the_key(tmp_path: Path) -> None:
    profile_file = write_document(tmp_path / "profile.toml", four_types().to_dict())
    port = free_port()
    env = os.environ | {"THINKQ_TEST_KEY": KEY}
    with serving(FakeServer()) as upstream:
        process = subprocess.Popen(
            [sys.executable, "-m", "thinkq", "serve", "--upstream", upstream, "--profile",
             str(profile_file), "--port", str(port), "--api-key-env", "THINKQ_TEST_KEY",
             "--template", "chatml"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            until(lambda: _answers(f"{base}/healthz"))
            with httpx.Client(base_url=base, timeout=10) as client:
                signed = client.get("/thinkq/", params={"key": KEY})
                assert signed.status_code == 303
                assert client.get("/thinkq/dashboard.json").status_code == 200
                assert client.get("/thinkq/", params={"key": "wrong"}).status_code == 401
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=BOUND)
    assert f"live page at {base}/thinkq/ (sign in once with ?key=<the key>)" in err
    assert KEY not in out + err
    assert "Traceback" not in err


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
