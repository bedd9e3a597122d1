"""``thinkq controller`` and ``thinkq serve --state``: errors, and a controller that
publishes the plan from counts that a reporter wrote to a real redis-server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from conftest import write_document
from fakes import profile
from llama_server import free_port
from redis_server import RedisServer
from thinkq.cli import app

RATE = 10.0  # what the reporter writes: 5 math and 5 chat arrivals a second


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    doc = profile(t0=[0.02, 0.02], c=[0.001, 0.001], rate=2.0).to_dict()
    return write_document(tmp_path / "profile.toml", doc)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("localhost:6379", "must start with redis://"),
        ("redis://127.0.0.1:6379/zero", "must be a number"),
    ],
)
@pytest.mark.parametrize("command", ["controller", "serve"])
def test_a_bad_state_url_is_one_line_and_exit_2(
    profile_file: Path, command: str, url: str, fragment: str
) -> None:
    args = ["--profile", str(profile_file), "--upstream", "http://127.0.0.1:9/v1"]
    code, err = invoke(
        command, "--state", url, *(args if command == "serve" else [str(profile_file)])
    )
    assert code == 2
    assert err.startswith("error: option --state: ")
    assert fragment in err
    assert err.count("\n") == 1


def test_the_controller_with_redis_unreachable_is_one_line_and_exit_1(profile_file: Path) -> None:
    code, err = invoke("controller", "--state", f"redis://127.0.0.1:{free_port()}/0")
    assert code == 1
    assert err.startswith("error: redis at redis://127.0.0.1:")
    assert err.count("\n") == 1


def report(client: redis.Redis, now: int) -> None:
    """What an enforcer writes (docs/fleet.md): the epoch, then per-second counts,
    here for the last minute and the next one (the controller reads past seconds)."""
    client.set("thinkq:epoch", json.dumps({"id": "test", "started": now - 60}), nx=True)
    with client.pipeline() as pipe:
        for second in range(now - 60, now + 60):
            pipe.hincrby(f"thinkq:arrivals:{second}", "math", 5)
            pipe.hincrby(f"thinkq:arrivals:{second}", "chat", 5)
            pipe.expire(f"thinkq:arrivals:{second}", 3600)
            pipe.hincrby(f"thinkq:completions:{second}", "math:n", 2)
            pipe.hincrbyfloat(f"thinkq:completions:{second}", "math:service", 0.5)
            pipe.hincrby(f"thinkq:completions:{second}", "math:thinking", 200)
            pipe.expire(f"thinkq:completions:{second}", 3600)
        pipe.execute()


def test_the_controller_publishes_the_plan_from_reported_counts(
    redis_server: RedisServer, profile_file: Path
) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    report(client, int(time.time()))
    command = [
        sys.executable, "-m", "thinkq", "controller", "--state", redis_server.url,
        "--resolve-every", "0.5", str(profile_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline, doc = time.monotonic() + 60, None
        while doc is None and time.monotonic() < deadline and process.poll() is None:
            raw = client.get("thinkq:plan")
            doc = None if raw is None else json.loads(str(raw))
            time.sleep(0.1)
        assert doc is not None, "no plan published"
        holder = client.get("thinkq:lease")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()
    print(f"published: rate {doc['rate']:.3f}/s, budgets {doc['budgets']}, "
          f"completions {doc['completions']}")  # fmt: skip
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "controller stopped" in err
    assert doc["by"] == holder
    assert str(holder).startswith(f"{socket.gethostname()}-{process.pid}-")
    assert doc["rate"] == pytest.approx(RATE, rel=0.1)
    assert doc["shares"]["math"] == pytest.approx(0.5, abs=0.01)
    assert set(doc["budgets"]) == {"math", "chat"}
    assert all(isinstance(b, int) and b > 0 for b in doc["budgets"].values())
    math = doc["completions"]["math"]
    assert math["mean_service"] == pytest.approx(0.25)
    assert math["mean_thinking"] == pytest.approx(100.0)
    assert "chat" not in doc["completions"]


def test_the_controller_stops_on_sigterm_too(redis_server: RedisServer, profile_file: Path) -> None:
    command = [sys.executable, "-m", "thinkq", "controller", "--state", redis_server.url]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ)
    assert process.stderr is not None
    try:
        for line in process.stderr:  # wait until it runs
            if "re-solving every" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "controller stopped" in err
