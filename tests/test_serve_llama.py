"""The gateway in front of the real llama.cpp server (SmolLM2-135M-Instruct).

Budgets are small (at most 24 tokens, about 14 ms each) so the whole file takes seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from llama_server import LlamaServer
from test_serve_app import metric
from thinkq import Profile
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app, upstream_transport
from thinkq.serve.gateway import Mode

TIMEOUT = 120.0  # generous: only to turn a hang into a failure
KEY = "test-key"


def _profile() -> Profile:
    """Two types with budgets 11 (math) and 6 (chat) at the prior rate of 0.5/s."""
    return Profile.from_arrays(
        names=["math", "chat"],
        share=[1.0, 1.0],
        A=[0.5, 0.3],
        b=[0.1, 0.2],
        D=[0.2, 0.2],
        t0=[0.2, 0.2],
        c=[0.014, 0.014],
        rate=0.5,
        alpha=1.0,
        max_tokens=24,
        match=[[r"\d"], []],
        default_task="chat",
    )


Scenario = Callable[[httpx.AsyncClient, Gateway], Awaitable[None]]


def run(llama_server: LlamaServer, scenario: Scenario, *, mode: Mode = "force") -> None:
    async def main() -> None:
        server = Server(  # the upstream connections of `thinkq serve`
            llama_server.base_url, llama_server.model, timeout=TIMEOUT,
            transport=upstream_transport(),
        )  # fmt: skip
        gateway = Gateway(
            _profile(), server, template=TEMPLATES["chatml"], resolve_every=0, mode=mode
        )
        async with gateway:
            transport = httpx.ASGITransport(app=create_app(gateway, api_key=KEY))
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", headers=headers
            ) as client:
                await asyncio.wait_for(scenario(client, gateway), TIMEOUT)

    asyncio.run(main())


def _events(text: str) -> list[dict[str, Any]]:
    data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


def _check_usage(usage: dict[str, Any], budget: int) -> None:
    assert usage["completion_tokens_details"]["reasoning_tokens"] == budget
    assert usage["completion_tokens"] > budget
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("task", ["math", "chat"])
def test_chat_through_the_gateway_thinks_exactly_its_budget(
    llama_server: LlamaServer, task: str
) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        budget = gateway.state()["budgets"][task]
        assert 0 < budget <= 24
        body = {
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Name a color."}],
            "max_tokens": 8,
            "metadata": {"task": task},
            "seed": 1,
        }
        reply = await client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["object"] == "chat.completion"
        assert data["model"] == "smollm2"
        choice = data["choices"][0]
        assert choice["finish_reason"] in ("stop", "length")
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["reasoning_content"]
        assert isinstance(choice["message"]["content"], str)
        _check_usage(data["usage"], budget)

    run(llama_server, scenario)


def test_streamed_chat_and_completions_think_exactly_their_budget(
    llama_server: LlamaServer,
) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        budgets = gateway.state()["budgets"]
        body = {
            "messages": [{"role": "user", "content": "What is 7 times 6?"}],  # rule: math
            "max_tokens": 6,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        reply = await client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        chunks = _events(reply.text)
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        assert deltas[0]["role"] == "assistant"
        assert "".join(d.get("reasoning_content", "") for d in deltas)
        assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
        _check_usage(chunks[-1]["usage"], budgets["math"])

        plain = {"prompt": "The sky is", "max_tokens": 6}  # no rule matches: chat
        reply = await client.post("/v1/completions", json=plain)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["object"] == "text_completion"
        assert data["choices"][0]["reasoning_content"]
        _check_usage(data["usage"], budgets["chat"])

        streamed = plain | {"stream": True, "stream_options": {"include_usage": True}}
        reply = await client.post("/v1/completions", json=streamed)
        assert reply.status_code == 200, reply.text
        chunks = _events(reply.text)
        assert "".join(c["choices"][0].get("reasoning_content", "") for c in chunks[:-1])
        _check_usage(chunks[-1]["usage"], budgets["chat"])

    run(llama_server, scenario)


def test_unknown_task_is_400_and_a_wrong_key_is_401(llama_server: LlamaServer) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = await client.post(
            "/v1/chat/completions", json=body, headers={"X-Thinkq-Task": "poetry"}
        )
        assert reply.status_code == 400
        assert "unknown task 'poetry'" in reply.json()["error"]["message"]
        wrong = {"Authorization": "Bearer not-the-key"}
        reply = await client.post("/v1/chat/completions", json=body, headers=wrong)
        assert reply.status_code == 401
        reply = await client.get("/v1/models", headers=wrong)
        assert reply.status_code == 401
        models = await client.get("/v1/models")
        assert "smollm2" in [m["id"] for m in models.json()["data"]]

    run(llama_server, scenario)


def _content(reply: httpx.Response) -> tuple[str, str | None]:
    """The answer and the finish reason of a plain or streamed chat reply."""
    if not reply.headers["content-type"].startswith("text/event-stream"):
        choice = reply.json()["choices"][0]
        return choice["message"]["content"], choice["finish_reason"]
    choices = [c["choices"][0] for c in _events(reply.text) if c["choices"]]
    text = "".join(c["delta"].get("content") or "" for c in choices)
    return text, choices[-1]["finish_reason"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_cap_mode_stops_the_answer_at_max_tokens_and_at_stop(
    llama_server: LlamaServer, stream: bool
) -> None:
    """SmolLM2 does not think, so its whole reply is the answer that cap mode cuts."""

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        body = {
            "messages": [{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
            "temperature": 0.0,
            "seed": 1,
            "stream": stream,
            "metadata": {"task": "math"},
        }
        full = await client.post("/v1/chat/completions", json=body | {"max_tokens": 24})
        assert full.status_code == 200, full.text
        text, _ = _content(full)
        words = text.split()
        assert len(words) >= 4, text

        short = await client.post("/v1/chat/completions", json=body | {"max_tokens": 3})
        cut, finish = _content(short)
        assert finish == "length"
        assert text.startswith(cut)
        assert 0 < len(cut) < len(text)
        if not stream:
            assert short.json()["usage"]["completion_tokens"] == 3  # no thinking: 3 answer tokens

        stop = words[2]  # the third word: the answer ends before its first occurrence
        stopped = await client.post(
            "/v1/chat/completions", json=body | {"max_tokens": 24, "stop": [stop]}
        )
        answer, finish = _content(stopped)
        assert answer == text[: text.index(stop)]
        assert finish == "stop"

    run(llama_server, scenario, mode="cap")


#: Bodies the gateway once crashed on (a 500 and a traceback).
HOSTILE = {
    "lone surrogate": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    "surrogate in stop": b'{"messages": [{"role": "user", "content": "Hi"}], "stop": ["\\udfff"]}',
    "nested 100,000 deep": b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}
#: A prompt that cannot fit the server's context of 4096 tokens.
OVER_THE_CONTEXT = {"messages": [{"role": "user", "content": "apple " * 5000}], "max_tokens": 4}


@pytest.mark.parametrize("mode", ["force", "cap"])
def test_hostile_bodies_are_400_plain_and_streamed(llama_server: LlamaServer, mode: Mode) -> None:
    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        for name, body in HOSTILE.items():
            for stream in (False, True):
                if stream:
                    body = body.replace(b'{"messages"', b'{"stream": true, "messages"', 1)
                reply = await client.post("/v1/chat/completions", content=body)
                assert reply.status_code == 400, (name, stream, reply.text)
                assert "\n" not in reply.json()["error"]["message"]
        text = gateway.metrics.exposition().decode()
        assert metric(text, "thinkq_requests_total", outcome="bad_request") == 2 * len(HOSTILE)
        assert metric(text, "thinkq_requests_total") == 2 * len(HOSTILE)

    run(llama_server, scenario, mode=mode)


def test_a_prompt_over_the_context_is_400_where_the_server_says_so(
    llama_server: LlamaServer,
) -> None:
    """llama-cpp-python says so to a plain request (400 "maximum context length"); its
    streams end empty instead, which stays a 502."""

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        many = {"messages": [{"role": "user", "content": "Hi"}] * 10_000, "max_tokens": 4}
        for body in (OVER_THE_CONTEXT, many):
            reply = await client.post("/v1/chat/completions", json=body)
            assert reply.status_code == 400, reply.text
            assert "maximum context length" in reply.json()["error"]["message"]
        text = gateway.metrics.exposition().decode()
        assert metric(text, "thinkq_requests_total", task="chat", outcome="bad_request") == 2
        assert metric(text, "thinkq_requests_total") == 2
        assert (gateway.queue.busy, gateway.queue.released) == (0, 2)

    run(llama_server, scenario)
