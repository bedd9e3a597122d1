"""``thinkq serve`` and ``thinkq loadtest``: startup errors, a real run, the load generator."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import write_document
from fakes import FakeServer, profile
from gateway_process import wait_healthy
from llama_server import LlamaServer, free_port
from thinkq.cli import app
from thinkq.cli._serve import context_length
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app
from thinkq.serve.loadtest import dataset_of, load_prompts, run_load

START_TIMEOUT_S = 60.0


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    return write_document(tmp_path / "profile.toml", profile().to_dict())


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def test_serve_with_the_upstream_down_is_one_line_and_exit_1(profile_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, err = invoke("serve", "--upstream", url, "--profile", str(profile_file))
    assert code == 1
    assert err.startswith("error: option --upstream: cannot connect")  # the option typed
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--profile", "missing.toml"], "no such profile file"),
        (["--template", "nope"], "option --template: unknown template 'nope'"),
        (["--api-key-env", "THINKQ_TEST_UNSET_KEY"], "THINKQ_TEST_UNSET_KEY is not set"),
        (["--upstream-key-env", "THINKQ_TEST_UNSET_KEY"], "option --upstream-key-env:"),
        (["--concurrency", "0"], "--concurrency"),
        (["--upstream", "localhost:8000"], "option --upstream:"),
        (["--suppress-ids", "2,x"], "option --suppress-ids: expected comma-separated integers"),
        (["--suppress-ids", "2,-1"], "option --suppress-ids: values must be >= 0"),
        (["--tokenizer", "missing.json"], "option --tokenizer: missing.json: no such file"),
        (["--max-body", "0"], "--max-body"),
    ],
)
def test_serve_user_errors_are_one_line_and_exit_2(
    profile_file: Path, args: list[str], fragment: str
) -> None:
    options = {"--upstream": "http://127.0.0.1:9/v1", "--profile": str(profile_file)}
    options |= dict(zip(args[::2], args[1::2], strict=True))
    code, err = invoke("serve", *(item for pair in options.items() for item in pair))
    assert code == 2
    assert err.startswith("error: ")
    assert fragment in err
    assert err.count("\n") == 1


def test_serve_with_an_unknown_model_exits_2(llama_server: LlamaServer, profile_file: Path) -> None:
    code, err = invoke(
        "serve", "--upstream", llama_server.base_url, "--profile", str(profile_file),
        "--model", "no-such-model", "--template", "chatml",
    )  # fmt: skip
    assert code == 2
    assert "no model 'no-such-model'" in err


def test_thinkq_serve_runs_in_front_of_llama_cpp(
    llama_server: LlamaServer, profile_file: Path
) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "thinkq", "serve", "--upstream", llama_server.base_url,
        "--profile", str(profile_file), "--template", "chatml", "--port", str(port),
        "--api-key-env", "THINKQ_TEST_KEY", "--max-body", "2000", "--read-timeout", "1",
        "--max-header", "4096", "--max-tokens", "100",
    ]  # fmt: skip
    env = os.environ | {"THINKQ_TEST_KEY": "k"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, base, START_TIMEOUT_S)
        headers = {"Authorization": "Bearer k", "X-Thinkq-Task": "chat"}
        state = httpx.get(f"{base}/thinkq/state", headers=headers, timeout=10).json()
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200, reply.text
        usage = reply.json()["usage"]
        assert usage["completion_tokens_details"]["reasoning_tokens"] == state["budgets"]["chat"]
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        big = {"messages": [{"role": "user", "content": "x" * 2000}]}
        too_large = httpx.post(f"{base}/v1/chat/completions", json=big, headers=headers)
        assert too_large.status_code == 413
        assert "larger than 2000 bytes" in too_large.json()["error"]["message"]
        lower = headers | {"Authorization": "bearer k"}  # the scheme's case does not matter
        many = httpx.post(
            f"{base}/v1/chat/completions", json=body | {"max_tokens": 101}, headers=lower
        )
        assert many.status_code == 400
        assert "max_tokens: must be at most 100" in many.json()["error"]["message"]
        long_head = headers | {"X-Fill": "a" * 5000}
        assert httpx.get(f"{base}/healthz", headers=long_head).status_code == 431
        with socket.create_connection(("127.0.0.1", port), timeout=30) as half_open:
            half_open.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            assert half_open.recv(4096).startswith(b"HTTP/1.1 408 ")  # after --read-timeout
    finally:
        os.kill(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert "Hi" not in err  # prompts are not logged unless asked
    assert "task=chat" in err


# ------------------------------------------------------------------ loadtest


def test_the_load_generator_sends_every_query_and_reports_sojourn_times() -> None:
    upstream = FakeServer(delay=0.002)

    async def main() -> None:
        # the profile models a server that takes about a second a request, the fake
        # takes milliseconds: admission would rightly refuse the backlog it predicts
        # from a burst at 200/s, and this test is about the load generator
        gateway = Gateway(
            profile(), upstream.server(), template=TEMPLATES["chatml"], max_wait=3600.0
        )
        async with gateway:
            transport = httpx.ASGITransport(app=create_app(gateway))
            result = await run_load(
                "http://gateway.test/v1", rate=200.0, queries=40,
                mix={"math": 3.0, "chat": 1.0}, prompts={"math": ["1+1?"], "chat": ["Hi"]},
                transport=transport, seed=3,
            )  # fmt: skip
        assert result.overall.sent == 40
        assert result.overall.served == 40
        assert sum(t.sent for t in result.tasks) == 40
        assert result.tasks[0].sent > result.tasks[1].sent  # three quarters are math
        for stats in (*result.tasks, result.overall):
            assert stats.mean is not None
            assert stats.p50 is not None
            assert stats.p99 is not None
            assert 0 < stats.p50 <= stats.p99
        assert len(upstream.generated()) == 80  # two phases each
        data = result.to_dict()
        assert data["overall"]["served"] == 40
        # per-type figures have the shape of every other command's: objects with a name
        assert [t["name"] for t in data["tasks"]] == ["math", "chat"]

    asyncio.run(main())


def test_unique_prompts_share_no_prefix_beyond_the_template() -> None:
    upstream = FakeServer(delay=0.0)

    async def main(unique: bool) -> list[str]:
        upstream.calls.clear()
        gateway = Gateway(
            profile(), upstream.server(), template=TEMPLATES["chatml"], max_wait=3600.0
        )
        async with gateway:
            transport = httpx.ASGITransport(app=create_app(gateway))
            await run_load(
                "http://gateway.test/v1", rate=500.0, queries=12, mix={"math": 1.0},
                prompts={"math": ["1+1?"]}, transport=transport, seed=5, unique=unique,
            )  # fmt: skip
        return [str(b["prompt"]) for b in upstream.generated() if "1+1?" in str(b["prompt"])]

    tagged = asyncio.run(main(unique=True))
    heads = {p.split("1+1?")[0] for p in tagged}  # the template, then the tag
    assert len(heads) == 12  # both phases of a query carry its tag
    tags = {re.search(r"\[query ([0-9a-f]{8})-(\d+)\] $", head) for head in heads}
    assert sorted(int(t.group(2)) for t in tags if t) == list(range(12))
    assert len({t.group(1) for t in tags if t}) == 1  # one run, one nonce
    again = asyncio.run(main(unique=True))  # another run of the same seed: other tags
    assert not {p.split("1+1?")[0] for p in again} & heads
    plain = asyncio.run(main(unique=False))
    assert len({p.split("1+1?")[0] for p in plain}) == 1  # one prompt, one prefix
    assert not any("[query" in p for p in plain)


def test_dataset_of_maps_task_names_to_benchmark_sets() -> None:
    assert dataset_of("GSM8K") == ("gsm8k", None)
    assert dataset_of("ARC-Challenge") == ("arc_challenge", None)
    assert dataset_of("bbh/boolean_expressions") == ("bbh", ["boolean_expressions"])
    for name in ("poetry", "gsm8k/main"):
        with pytest.raises(ValueError, match="names no benchmark set"):
            dataset_of(name)


def test_bbh_tasks_of_a_profile_draw_their_own_prompts(benchmarks_dir: Path) -> None:
    prompts = load_prompts(
        ["bbh/boolean_expressions", "bbh/sports_understanding"], data_dir=benchmarks_dir, n=3
    )
    assert all("True" in p or "False" in p for p in prompts["bbh/boolean_expressions"])
    assert all("plausible" in p for p in prompts["bbh/sports_understanding"])
    assert all(len(v) == 3 for v in prompts.values())
    with pytest.raises(ValueError, match="no_such_task"):
        load_prompts(["bbh/no_such_task"], data_dir=benchmarks_dir, n=1)


def test_loadtest_option_errors_are_one_line() -> None:
    code, err = invoke(
        "loadtest", "--target", "http://127.0.0.1:9/v1", "--rate", "1", "--queries", "1",
        "--mix", "gsm8k",
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: option --mix: expected task=share")
    code, err = invoke(
        "loadtest", "--target", "http://127.0.0.1:9/v1", "--rate", "1", "--queries", "1",
        "--mix", "poetry=1",
    )  # fmt: skip
    assert code == 2
    assert "names no benchmark set" in err


@pytest.mark.parametrize(
    ("entry", "length"),
    [
        ({"id": "fake-model", "max_model_len": 4096}, 4096),  # vLLM, SGLang
        ({"id": "fake-model"}, None),  # llama-cpp-python: not said
        ({"id": "other", "max_model_len": 4096}, None),
        ({"id": "fake-model", "max_model_len": "4096"}, None),
        ({"id": "fake-model", "max_model_len": 0}, None),
    ],
)
def test_the_max_tokens_default_is_the_upstreams_context_where_it_says(
    entry: dict[str, object], length: int | None
) -> None:
    def models(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "list", "data": [entry]})

    async def main() -> int | None:
        server = Server("http://llm.test/v1", "fake-model", transport=httpx.MockTransport(models))
        async with server:
            return await context_length(server)

    assert asyncio.run(main()) == length
