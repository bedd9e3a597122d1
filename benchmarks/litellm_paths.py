"""The LiteLLM paths of ``serve_overhead.py --litellm``, and the enforcer's own cost.

* **litellm**: the LiteLLM proxy (``litellm --config``, one worker, default logging,
  no master key) in front of the same stub, chat requests;
* **enforcer**: the same proxy with ``thinkq.integrations.litellm.enforcer`` typing
  every request, setting its budget field and reporting to a real ``redis-server``
  every second (database 1 of the one ``serve_overhead.py`` starts: database 0 is the
  fleet of its ``thinkq serve --state`` path; no controller: it applies the profile's
  own budgets, zero here, and reads ``thinkq:plan`` each second like any other).

:func:`hook_cost` times the enforcer's two hooks in-process (CPU per request), the
part of the difference between the two paths that is thinkq's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

CONFIG = """\
model_list:
  - model_name: stub
    litellm_params:
      model: openai/stub
      api_base: {upstream}/v1
      api_key: none
"""
ENFORCER = """\
environment_variables:
  THINKQ_STATE: {state}
  THINKQ_PROFILE: {profile}
  THINKQ_BUDGET_FIELD: thinking_budget_tokens
litellm_settings:
  callbacks: thinkq.integrations.litellm.enforcer
"""
#: Seconds the proxy keeps an idle connection (as every server of serve_overhead.py).
KEEP_ALIVE = 300
ENV = {
    # LiteLLM 1.108 refuses to start without a master key unless told; the issue's
    # figures are without one
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from GitHub at start
}


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port`` (Debian's package), no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def start_litellm(
    directory: Path, name: str, port: int, upstream: str, *, state: str | None, profile: Path
) -> subprocess.Popen[bytes]:
    """The LiteLLM proxy on ``port``; with the enforcer when ``state`` is given."""
    config = directory / f"{name}.yaml"
    text = CONFIG.format(upstream=upstream)
    if state is not None:
        text += ENFORCER.format(state=state, profile=profile)
    config.write_text(text)
    litellm = Path(sys.executable).parent / "litellm"
    command = [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1",
               "--keepalive_timeout", str(KEEP_ALIVE)]  # fmt: skip
    return subprocess.Popen(
        command, env=os.environ | ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def hook_cost(profile: Path, n: int = 20000) -> float:
    """CPU milliseconds per request of the enforcer's pre-call hook and success
    callback, in-process, without Redis (its reports run off the request path)."""
    os.environ.update(ENV)
    from thinkq.integrations.litellm import from_env

    hooks = from_env({"THINKQ_PROFILE": str(profile), "THINKQ_BUDGET_FIELD": "b"})
    details = SimpleNamespace(reasoning_tokens=0)
    response = SimpleNamespace(usage=SimpleNamespace(completion_tokens_details=details))
    start = datetime(2026, 1, 1)
    end = start + timedelta(milliseconds=3)

    async def loop() -> float:
        began = time.process_time()
        for _ in range(n):
            data = {
                "model": "stub",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 1,
                "metadata": {},
                "proxy_server_request": {"headers": {"content-type": "application/json"}},
            }
            data = await hooks.async_pre_call_hook(None, None, data, "acompletion")
            kwargs = {"litellm_params": {"metadata": data["metadata"]}}
            await hooks.async_log_success_event(kwargs, response, start, end)
        spent = time.process_time() - began
        counted = sum(sum(c.values()) for c in hooks.enforcer.arrivals.values())
        if counted != n:
            raise RuntimeError(f"the hooks counted {counted} arrivals of {n}")
        return spent / n * 1e3

    return asyncio.run(loop())
