"""thinkq.integrations without a proxy process: the enforcer's typing, budget field and
counts; its background refresh against a real redis-server (a plan adopted, a foreign
plan refused, counts kept through an outage); the LiteLLM hooks called as the proxy
calls them. The real LiteLLM proxy is in tests/test_litellm_enforcer.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException

from fakes import Clock, profile
from redis_server import RedisServer
from thinkq.errors import RoutingError
from thinkq.fleet.counts import completions, matrix
from thinkq.fleet.plans import fingerprint, to_doc
from thinkq.fleet.state import Store
from thinkq.integrations.enforcer import Enforcer, set_field
from thinkq.integrations.litellm import ThinkqEnforcer, from_env
from thinkq.serve.controller import Controller, Plan
from thinkq.serve.estimator import Estimate, Estimator

START = 1_000_000.0
NAMES = ("math", "chat")
RULES = profile(match=[[r"\d\s*\+\s*\d"], []])


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **fields}


def solved_at(rate: float) -> Plan:
    """The plan a leader would publish at ``rate`` (budgets unlike the prior's)."""
    estimator = Estimator(prior_rate=RULES.rate, prior_shares=RULES.share, window=60.0)
    controller = Controller(RULES, estimator)
    return controller.resolve(Estimate(rate, controller.plan.shares, 1000))


def test_import_thinkq_does_not_import_litellm() -> None:
    code = "import sys, thinkq, thinkq.integrations.enforcer; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("body", "headers", "task"),
    [
        (chat("Say hi"), {"X-Thinkq-Task": "math"}, "math"),
        (chat("2 + 2", metadata={"task": "chat"}), {"x-thinkq-task": "chat"}, "chat"),
        (chat("2 + 2", metadata={"task": "chat"}), None, "chat"),
        (chat("What is 2 + 2?"), None, "math"),
        ({"prompt": "Add 3+4"}, None, "math"),
        (chat("Say hi"), None, "chat"),
    ],
)
def test_requests_are_typed_as_the_gateway_types_them(
    body: dict[str, Any], headers: dict[str, str] | None, task: str
) -> None:
    assert NAMES[Enforcer(RULES).route(body, headers)] == task


def test_an_unknown_task_is_a_routing_error() -> None:
    with pytest.raises(RoutingError, match="unknown task 'poetry'"):
        Enforcer(RULES).route(chat("hi"), {"X-Thinkq-Task": "poetry"})


def test_apply_sets_the_field_and_counts_the_arrival_in_its_second() -> None:
    clock = Clock(START + 0.5)
    enforcer = Enforcer(RULES, field="custom_params.thinking_budget", wall=clock)
    body = chat("hi", custom_params={"top_k": 5})
    budget = enforcer.apply(body, 0)
    assert budget == enforcer.fallback.budgets[0] > 0
    assert body["custom_params"] == {"top_k": 5, "thinking_budget": budget}
    enforcer.completed(0, service=0.25, thinking=40)
    clock.now += 1
    enforcer.completed(0, service=0.75, thinking=-1)  # nonsense thinking counts as 0
    assert enforcer.arrivals == {START: {"math": 1}}
    assert enforcer.completions[START] == {"math:n": 1, "math:service": 0.25, "math:thinking": 40}
    assert enforcer.completions[START + 1]["math:thinking"] == 0


@pytest.mark.parametrize("field", ["", "a..b", ".x"])
def test_a_bad_field_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="field"):
        Enforcer(RULES, field=field)


def test_set_field_replaces_a_non_object_on_the_path() -> None:
    body: dict[str, Any] = {"nvext": 3}
    set_field(body, "nvext.max_thinking_tokens", 12)
    assert body == {"nvext": {"max_thinking_tokens": 12}}


# long: one Redis story (a plan, a foreign plan, an outage, the return) in its order
def test_refresh_adopts_the_plan_reports_counts_and_survives_an_outage(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        clock = Clock(START)
        enforcer = Enforcer(RULES, state=redis_server.url, wall=clock)
        reader = Store(redis_server.url, wall=clock)
        plan = solved_at(20.0)
        assert plan.budgets != enforcer.fallback.budgets
        doc = to_doc(plan, NAMES, fingerprint=fingerprint(RULES), by="leader")
        await reader.publish(doc)
        for task in (0, 1, 1):
            enforcer.apply(chat("x"), task)
        enforcer.completed(1, service=0.5, thinking=30)
        await enforcer.refresh()
        assert enforcer.status()["source"] == "plan"
        assert enforcer.plan.budgets == plan.budgets
        assert enforcer.apply(chat("x"), 0) == plan.budgets[0]
        arrivals = await reader.buckets("arrivals", [int(START)])
        assert matrix(arrivals, NAMES).tolist() == [[1.0, 2.0]]
        done = completions(await reader.buckets("completions", [int(START)]), NAMES)
        assert done == {"chat": {"n": 1, "mean_service": 0.5, "mean_thinking": 30.0}}

        await reader.publish(to_doc(plan, NAMES, fingerprint="another-profile", by="x"))
        await enforcer.refresh()
        assert enforcer.status()["source"] == "profile"
        assert "another profile" in str(enforcer.refused)
        assert enforcer.plan.budgets == enforcer.fallback.budgets
        await reader.publish(doc)
        await enforcer.refresh()
        assert enforcer.plan.budgets == plan.budgets

        redis_server.kill()
        clock.now += 1
        enforcer.apply(chat("x"), 0)  # the second arrival of math, unreported so far
        await enforcer.refresh()  # no exception: the plan in force stays
        assert enforcer.connected is False
        assert enforcer.plan.budgets == plan.budgets
        redis_server.run()  # back, empty
        await reader.aclose()
        reader = Store(redis_server.url, wall=clock)
        await enforcer.refresh()
        assert enforcer.connected is True
        both = await reader.buckets("arrivals", [int(START), int(START) + 1])
        assert matrix(both, NAMES).tolist() == [[0.0, 0.0], [1.0, 0.0]]  # kept, then sent
        await enforcer.aclose()
        await reader.aclose()

    asyncio.run(main())


def test_the_hooks_type_set_count_and_refuse_as_the_proxy_calls_them() -> None:
    async def main() -> None:
        hooks = ThinkqEnforcer(Enforcer(RULES, field="thinking_budget_tokens"))
        data = chat("What is 2 + 2?")
        data["proxy_server_request"] = {"headers": {"x-thinkq-task": "chat"}}
        out = await hooks.async_pre_call_hook(None, None, data, "acompletion")
        budget = hooks.enforcer.fallback.budgets[1]
        assert out["thinking_budget_tokens"] == budget
        assert out["metadata"]["thinkq_task"] == "chat"
        embedding = {"input": "x"}
        assert await hooks.async_pre_call_hook(None, None, embedding, "aembedding") == {
            "input": "x"
        }
        bad = chat("hi", metadata={"task": "poetry"})
        with pytest.raises(HTTPException) as info:
            await hooks.async_pre_call_hook(None, None, bad, "acompletion")
        assert info.value.status_code == 400
        # the shape of LiteLLM's ModelResponse (building one warns under pydantic 2.14)
        details = SimpleNamespace(reasoning_tokens=7)
        response = SimpleNamespace(usage=SimpleNamespace(completion_tokens_details=details))
        start = datetime(2026, 1, 1)
        kwargs = {"litellm_params": {"metadata": out["metadata"]}}
        await hooks.async_log_success_event(kwargs, response, start, start + timedelta(seconds=2))
        await hooks.async_log_success_event({}, response, start, start)  # not typed here
        sums = [dict(s) for s in hooks.enforcer.completions.values()]
        assert sums == [{"chat:n": 1, "chat:service": 2.0, "chat:thinking": 7}]

    asyncio.run(main())


def test_from_env_reads_the_state_field_and_slo() -> None:
    hooks = from_env({"THINKQ_BUDGET_FIELD": "thinking_budget_tokens", "THINKQ_SLO": "p95<=60s"})
    assert hooks.enforcer.field == "thinking_budget_tokens"
    assert hooks.enforcer.store is None
    assert hooks.enforcer.names == ("AIME", "GSM8K", "GPQA", "CRUXEval", "BBH", "ARC-Challenge")
    assert len(hooks.enforcer.objectives) == 1


def test_a_failing_refresh_is_logged_and_tried_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        reader = Store(redis_server.url)
        await reader.client.set("thinkq:epoch", "not JSON")  # someone else's bug
        # one wall second throughout: the new epoch (started now) keeps the arrival
        enforcer = Enforcer(RULES, state=redis_server.url, tick=0.05, wall=Clock(START))
        enforcer.start()
        enforcer.apply(chat("x"), 0)
        await asyncio.sleep(0.3)
        assert "refresh failed" in caplog.text
        await reader.client.delete("thinkq:epoch")
        await asyncio.sleep(0.3)
        assert enforcer.connected is True
        keys = await reader.client.keys("thinkq:arrivals:*")
        found = matrix([await reader.client.hgetall(k) for k in keys], NAMES)
        assert found.sum(axis=0).tolist() == [1.0, 0.0]  # kept through the failures, then sent
        await enforcer.aclose()
        await reader.aclose()

    asyncio.run(main())
