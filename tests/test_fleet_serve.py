"""Two real ``thinkq serve --state`` processes sharing a real redis-server: one plan,
a Redis outage in the middle of the load, rejoining, and a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import write_document
from fakes import FakeServer, profile
from llama_server import free_port
from loopback import serving
from redis_server import RedisServer

PERIOD = 0.5  # --resolve-every: the members tick every PERIOD seconds
BODY = {"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 4}


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    doc = profile(t0=[0.02, 0.02], c=[0.001, 0.001], rate=2.0).to_dict()
    return write_document(tmp_path / "profile.toml", doc)


@contextmanager
def gateways(upstream: str, profile_file: Path, state: str) -> Iterator[list[str]]:
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "thinkq",
                "serve",
                "--upstream",
                upstream,
                "--mode",
                "cap",
                "--profile",
                str(profile_file),
                "--port",
                str(port),
                "--state",
                state,
                "--resolve-every",
                str(PERIOD),
                "--window",
                "4",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for process, base in zip(processes, bases, strict=True):
            until(lambda base=base: httpx.get(f"{base}/healthz", timeout=2).status_code == 200)
            assert process.poll() is None
        yield bases
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:  # uvicorn ends by raising the signal again (130)
            _, err = process.communicate(timeout=30)
            assert process.returncode in (0, 130, -signal.SIGINT), err
            assert "Traceback" not in err
            assert "Task was destroyed" not in err  # the member's task ended with it
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def until(condition: Callable[[], Any], timeout: float = 30.0) -> float:
    """Seconds until ``condition()`` holds (errors count as not yet); fails after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def states(bases: list[str]) -> list[dict[str, Any]]:
    return [httpx.get(f"{base}/thinkq/state", timeout=5).json() for base in bases]


def one_plan(bases: list[str], since: float = 0.0) -> bool:
    """Both connected, on the same plan, solved less than ``since`` seconds ago if set."""
    return same_plan(states(bases), since)


def same_plan(found: list[dict[str, Any]], since: float = 0.0) -> bool:
    """``one_plan`` of the states ``found``."""
    shared = [s["state"] for s in found]
    return (
        all(s["connected"] for s in shared)
        and sorted(s["role"] for s in shared) == ["follower", "leader"]
        and shared[0]["plan_by"] == shared[1]["plan_by"]
        and found[0]["budgets"] == found[1]["budgets"]
        and (since <= 0 or all(s["plan_age"] < since for s in shared))
    )


def load(bases: list[str], n: int) -> list[int]:
    codes = []
    for k in range(n):
        reply = httpx.post(
            f"{bases[k % 2]}/v1/chat/completions", json=BODY, timeout=10,
            headers={"X-Thinkq-Task": ("math", "chat")[k % 3 % 2]},
        )  # fmt: skip
        codes.append(reply.status_code)
    return codes


def test_two_serve_processes_share_a_plan_through_an_outage(
    redis_server: RedisServer, profile_file: Path
) -> None:
    with (
        serving(FakeServer()) as upstream,
        gateways(upstream, profile_file, redis_server.url) as bases,
    ):
        codes = load(bases, 40)
        until(lambda: one_plan(bases))
        redis_server.kill()
        down = until(lambda: not any(s["state"]["connected"] for s in states(bases)))
        codes += load(bases, 40)
        during = states(bases)
        redis_server.run()  # same port, empty
        restarted = time.monotonic()
        rejoined = until(lambda: one_plan(bases, since=time.monotonic() - restarted))
        codes += load(bases, 20)
        # the load moves the leader's next plan; the follower applies it within a period
        after: list[dict[str, Any]] = []

        def agreed() -> bool:
            after[:] = states(bases)
            return same_plan(after)

        settled = until(agreed, timeout=2 * PERIOD + 1.0)
    print(f"disconnected shown {down:.2f} s after the kill, rejoined {rejoined:.2f} s after "
          f"the restart (period {PERIOD} s), one plan {settled:.2f} s after the last load, "
          f"budgets {after[0]['budgets']}")  # fmt: skip
    assert codes == [200] * 100
    assert all(s["state"]["role"] == "local" for s in during)
    assert all("redis at" in s["state"]["error"] for s in during)
    assert after[0]["budgets"] == after[1]["budgets"]
    assert rejoined <= 2 * PERIOD + 1.0  # a tick, then the leader's plan at the next
