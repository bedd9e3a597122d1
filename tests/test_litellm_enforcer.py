"""The LiteLLM enforcer end to end: a real LiteLLM proxy (``litellm --config``) with
``thinkq.integrations.litellm.enforcer`` in front of the real llama.cpp server, a real
redis-server and ``thinkq controller`` publishing the plan.

What the upstream receives is read from a recording pass-through between LiteLLM and
llama.cpp (tests/recorder.py): llama.cpp's log does not show request bodies. Every
request must carry, in ``thinking_budget_tokens``, the budget of its type in a plan the
controller published (never the profile's own budgets, which differ here), and its
arrival and completion must reach Redis in the controller's format, so that the
controller's next plans count them. With Redis then killed, requests are still served,
with the last plan's budgets.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from conftest import write_document
from fakes import profile
from llama_server import MODEL, LlamaServer, free_port
from recorder import recording
from redis_server import RedisServer
from thinkq.fleet.counts import completions, matrix
from thinkq.integrations.enforcer import Enforcer

KEY = "sk-thinkq-test-0123456789abcdef0123456789abcdef"
FIELD = "thinking_budget_tokens"
SEED = 20  # arrivals a second another reporter wrote over the last SEED_SECONDS
SEED_SECONDS = 30
START_TIMEOUT_S = 180.0


def routed_profile() -> Any:
    """Two types; "N + M" prompts are math by rule, the rest chat (the default)."""
    return profile(t0=[0.02, 0.02], c=[0.001, 0.001], rate=2.0, match=[[r"\d\s*\+\s*\d"], []])


CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: none
environment_variables:
  THINKQ_STATE: {state}
  THINKQ_PROFILE: {profile}
  THINKQ_BUDGET_FIELD: {field}
  THINKQ_TICK: "0.2"
litellm_settings:
  callbacks: thinkq.integrations.litellm.enforcer
general_settings:
  master_key: {key}
"""


@contextmanager
def running(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A subprocess logging to ``log``, stopped by its process id (SIGINT, then kill)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def seed(client: redis.Redis, now: int) -> None:
    """Another reporter's arrivals (docs/fleet.md): SEED a second, half of each type."""
    started = now - SEED_SECONDS
    client.set("thinkq:epoch", json.dumps({"id": "seed", "started": started}), nx=True)
    with client.pipeline() as pipe:
        for second in range(started, now):
            pipe.hincrby(f"thinkq:arrivals:{second}", "math", SEED // 2)
            pipe.hincrby(f"thinkq:arrivals:{second}", "chat", SEED // 2)
            pipe.expire(f"thinkq:arrivals:{second}", 3600)
        pipe.execute()


class Plans:
    """Every plan published while it runs, with when it was first seen (Redis polled
    every 50 ms; a plan stays at least a re-solve period of 0.5 s, and the enforcer
    reads it every 0.2 s)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []
        self.since: list[float] = []  # time.monotonic() when each was first seen
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        while not self.stop.is_set():
            raw = self.client.get("thinkq:plan")
            if raw is not None:
                doc = json.loads(str(raw))
                if not self.seen or doc != self.seen[-1]:
                    self.seen.append(doc)
                    self.since.append(time.monotonic())
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    def budgets(self, task: str, *, start: float = -math.inf, end: float = math.inf) -> set[int]:
        """The budgets of ``task`` in the plans in force at some time in [start, end]."""
        ends = [*self.since[1:], math.inf]
        return {int(doc["budgets"][task])
                for doc, since, until in zip(self.seen, self.since, ends, strict=True)
                if since <= end and until >= start}  # fmt: skip


def wait_for(what: str, ready: Any, timeout: float, process: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def proxy_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).is_success
    except httpx.HTTPError:
        return False


REQUESTS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    # (expected type, headers, body fields)
    ("math", {"X-Thinkq-Task": "math"}, {"content": "Say hello."}),
    ("chat", {"X-Thinkq-Task": "chat"}, {"content": "What is 2 + 3?"}),
    ("chat", {}, {"content": "What is 4 + 4?", "metadata": {"task": "chat"}}),
    ("math", {}, {"content": "Name a colour.", "metadata": {"task": "math"}}),
    ("math", {}, {"content": "What is 2 + 3?"}),
    ("math", {}, {"content": "Compute 7+1 please."}),
    ("chat", {}, {"content": "Name a colour."}),
    ("chat", {}, {"content": "Say hello."}),
]


def send(port: int, headers: dict[str, str], fields: dict[str, Any]) -> httpx.Response:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": fields["content"]}],
        "max_tokens": 4,
        "temperature": 0,
    }
    if "metadata" in fields:
        body["metadata"] = fields["metadata"]
    auth = {"Authorization": f"Bearer {KEY}"}
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=auth | headers,
        timeout=120,
    )  # fmt: skip


def shared_counts(client: redis.Redis) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """All arrivals per type in Redis, and all completions (the controller's readers)."""
    hashes = {kind: [client.hgetall(k) for k in client.keys(f"thinkq:{kind}:*")]
              for kind in ("arrivals", "completions")}  # fmt: skip
    counts = matrix(hashes["arrivals"], ["math", "chat"]).sum(axis=0)
    return {"math": int(counts[0]), "chat": int(counts[1])}, completions(
        hashes["completions"], ["math", "chat"]
    )


# long: one scenario across five processes; split, its steps lose their order
def test_litellm_with_the_enforcer_sets_the_plans_budget_on_what_llama_cpp_receives(
    tmp_path: Path, redis_server: RedisServer, llama_server: LlamaServer
) -> None:
    the_profile = routed_profile()
    profile_file = write_document(tmp_path / "profile.json", the_profile.to_dict())
    own = dict(zip(the_profile.names, Enforcer(the_profile).fallback.budgets, strict=True))
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    seed(client, int(time.time()))
    controller = [
        sys.executable, "-m", "thinkq", "controller", "--state", redis_server.url,
        "--resolve-every", "0.5", "--window", "600", str(profile_file),
    ]  # fmt: skip
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_COLOR": "1"}
    with (
        recording(llama_server.base_url) as (api_base, recorder),
        running(controller, tmp_path / "controller.log") as control,
    ):
        plans = Plans(client)
        try:
            wait_for("a plan", lambda: plans.seen, 60, control)
            first = plans.seen[0]
            assert first["budgets"] != own, "the plan must differ from the profile's budgets"
            config = tmp_path / "config.yaml"
            config.write_text(CONFIG.format(
                model=MODEL, api_base=api_base, state=redis_server.url, profile=profile_file,
                field=FIELD, key=KEY,
            ))  # fmt: skip
            litellm = [str(bin_dir / "litellm"), "--config", str(config), "--port", str(port)]
            with running(litellm, tmp_path / "litellm.log", env) as proxy:
                wait_for("the LiteLLM proxy", lambda: proxy_answers(port), START_TIMEOUT_S, proxy)
                times = []  # when each request was sent and answered
                for _, headers, fields in REQUESTS:
                    sent_at = time.monotonic()
                    reply = send(port, headers, fields)
                    assert reply.status_code == 200, reply.text
                    times.append((sent_at, time.monotonic()))
                bad = send(port, {"X-Thinkq-Task": "poetry"}, {"content": "Hi"})
                assert bad.status_code == 400
                assert "unknown task 'poetry'" in bad.text
                sent = {t: sum(1 for e, _, _ in REQUESTS if e == t) for t in ("math", "chat")}
                seeded = SEED // 2 * SEED_SECONDS
                want = {t: seeded + n for t, n in sent.items()}

                def reported() -> bool:
                    arrivals, done = shared_counts(client)
                    ns = {t: done.get(t, {}).get("n", 0) for t in sent}
                    return arrivals == want and ns == sent

                wait_for("the reports in Redis", reported, 20)
                # the controller's next plan counts them in its window's arrivals
                total = sum(want.values())
                wait_for("a plan with them", lambda: plans.seen[-1]["arrivals"] == total, 10)
                plans.close()
                # Redis gone: requests are still served, with the last plan read
                redis_server.kill()
                down = time.monotonic()
                for _, headers, fields in REQUESTS[:2]:
                    reply = send(port, headers, fields)
                    assert reply.status_code == 200, reply.text
        finally:
            plans.close()
    received = recorder.bodies("/chat/completions")
    received, while_down = received[:-2], received[-2:]
    for (task, _, _), body in zip(REQUESTS[:2], while_down, strict=True):
        assert body[FIELD] in plans.budgets(task, start=down - 1.0)  # the last plan read
    published = list(dict.fromkeys(json.dumps(d["budgets"]) for d in plans.seen))
    print(f"own budgets {own}; published in turn {', '.join(published)}")
    print(f"received budgets {[b.get(FIELD) for b in received]}")
    for task in own:  # else the check below could not tell the plan from the profile
        assert own[task] not in plans.budgets(task)
    assert len(received) == len(REQUESTS)  # the refused request never reached it
    for (task, _, fields), body, (sent_at, done) in zip(REQUESTS, received, times, strict=True):
        assert body["messages"][-1]["content"] == fields["content"]
        # a plan in force while it was sent: the enforcer reads every 0.2 s (1 s slack)
        in_force = plans.budgets(task, start=sent_at - 1.0, end=done)
        assert body[FIELD] in in_force, (task, body[FIELD], in_force)
    assert plans.seen[-1]["completions"]["math"]["n"] == sent["math"]
